"""IAM calls kept for known clients (by address, while a token of theirs passed within a shift):
outsiders' random tokens fill the open places, never these."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from sfdcflex.clients.errors import IamBusy, TokenRefused
from sfdcflex.clients.iam import KNOWN_CLIENT_SECONDS, FlexTokenValidator
from tests.support.iam import ACCOUNT_SID, AUTH_TOKEN

AGENT, OUTSIDER = "10.0.0.7", "203.0.113.9"


def _garbage(validator: FlexTokenValidator, token: str) -> str:
    try:
        validator.validate(token, OUTSIDER)
    except TokenRefused:
        return "refused"
    return "accepted"


def test_a_known_client_s_new_token_is_checked_while_outsiders_fill_the_open_places(iam, clock, monkeypatch):
    from sfdcflex.clients import iam as iam_module
    monkeypatch.setattr(iam_module, "IAM_QUEUE_SECONDS", 0.05)
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, timeout=5,
                                   max_calls=2, reserved_calls=1)
    assert validator.validate(iam.issue_token("ada@example.com"), AGENT).identity == "ada@example.com"
    release = threading.Event()
    iam.fail_next("validate", hold=release)     # the outsider's call holds the one open place
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(_garbage, validator, "garbage-1")
        try:
            deadline = time.monotonic() + 5
            while iam.calls["validate"] < 2 and time.monotonic() < deadline:
                time.sleep(0.005)   # polling the stand-in's counter: the call has no event to wait on
            with pytest.raises(IamBusy):
                validator.validate("garbage-2", OUTSIDER)         # no open place, not known
            with pytest.raises(IamBusy):
                validator.validate(iam.issue_token("ada@example.com"), "10.0.0.8")   # not known either
            renewed = iam.issue_token("ada@example.com", ttl=10 * KNOWN_CLIENT_SECONDS)
            assert validator.validate(renewed, AGENT).identity == "ada@example.com"   # kept place
            clock.now += KNOWN_CLIENT_SECONDS   # a passed check is remembered for a shift
            with pytest.raises(IamBusy):
                validator.validate(iam.issue_token("ada@example.com"), AGENT)
        finally:
            release.set()
        assert held.result(5) == "refused"

