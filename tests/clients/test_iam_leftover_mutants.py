"""Flex token checks' defaults that mutation testing left alive (mutmut 3.8, the leftover run of
`FlexTokenValidator.__init__`): how long an IAM call may take, how many answers are remembered.

Each test names the mutants it kills. The IAM stand-in is test_iam_mutants' module-scoped one.
"""
from __future__ import annotations

import hashlib

from sfdcflex.clients.iam import FlexAgent, FlexTokenValidator
from tests.support.transports import TimeoutsSeen
from tests.clients.test_iam import FakeClock
from tests.clients.test_iam_mutants import ACCOUNT_SID, AUTH_TOKEN, iam  # noqa: F401  (iam is a fixture)


def test_an_iam_call_may_take_five_seconds_by_default(iam):
    """__init__ 1 (the default timeout 6 s instead of 5 s)."""
    transport = TimeoutsSeen()
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, transport=transport)
    try:
        assert validator.validate(iam.issue_token("ada@example.com")).identity == "ada@example.com"
    finally:
        transport.close()
    assert transport.timeouts == [5.0]


def test_by_default_ten_thousand_answers_are_remembered_and_no_more(iam):
    """__init__ 3 (the default cache size 10,001 instead of 10,000). The 10,000 later answers are
    put in directly (as the IAM call's answer is): 10,000 IAM calls would take seconds."""
    clock = FakeClock()
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock)
    token = iam.issue_token("ada@example.com")
    validator.validate(token)                                   # the oldest remembered answer
    filler = FlexAgent(identity="filler@example.com", roles=(), expires_at=clock.now + 3600)
    for n in range(10_000):                                     # 10,001 answers: one too many
        validator._remember(hashlib.sha256(f"filler-{n}".encode()).hexdigest(), filler)
    calls = iam.calls["validate"]
    assert validator.validate_with_source(token) == (validator.validate(token), False)
    assert iam.calls["validate"] == calls + 1                   # the oldest was given up: IAM asked
