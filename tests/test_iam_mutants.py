"""Flex token checks that mutation testing found unchecked (mutmut 3.8, issue 18): what a refusal
says, which remembered answers a full cache gives up, how long a check waits for another's IAM call.

Each test names the surviving mutants it kills; the equivalent ones are listed in README's
reliability report. One IAM stand-in serves the whole module, so counts are taken as differences.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest

from sfdcflex.clients.iam import FlexTokenValidator, _Flight
from sfdcflex.demo.standins import IamStandIn
from sfdcflex.runtime.errors import BadGateway, Forbidden

ACCOUNT_SID = "AC" + "2" * 32
AUTH_TOKEN = "iam-mutants-auth-token"


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def iam():
    with IamStandIn(ACCOUNT_SID, AUTH_TOKEN) as standin:
        yield standin


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def validator(iam, clock):
    return FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, timeout=2)


def _answers_next(iam, answer: dict) -> None:
    """IAM's next validate call answers 200 with this JSON body."""
    iam.fail_next("validate", status=200, body=json.dumps(answer).encode(), content_type="application/json")


def _refusal(validator, token: str) -> Forbidden:
    with pytest.raises(Forbidden) as raised:
        validator.validate(token)
    return raised.value


# --- what a refusal says -------------------------------------------------------------------------

def test_iam_s_reason_is_passed_on(iam, validator):
    """_rejection_message 3 (the reason dropped unless it echoes the token)."""
    refused = _refusal(validator, "not-a-flex-token")
    assert (refused.code, refused.message) == ("invalid_token", "The Flex token is not valid: Invalid Access Token")


def test_a_reason_that_echoes_the_token_is_left_out(iam, validator):
    """_rejection_message 3-6 (the token echoed, or the plain refusal garbled)."""
    token = "echoed-token-0123456789"
    _answers_next(iam, {"valid": False, "message": f"Token {token} is unknown"})
    assert _refusal(validator, token).message == "The Flex token is not valid"


# --- bounded memory --------------------------------------------------------------------------------

def test_a_full_refusal_memory_forgets_the_oldest_refusal(iam, clock):
    """_remember_refusal 11 (the newest refusal evicted instead of the oldest)."""
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, cache_size=2)
    for n in range(3):
        _refusal(validator, f"refused-{n}")
    calls = iam.calls["validate"]
    _refusal(validator, "refused-2")          # the newest is still remembered: no IAM call
    _refusal(validator, "refused-1")
    assert iam.calls["validate"] == calls
    _refusal(validator, "refused-0")          # the oldest was given up: IAM is asked again
    assert iam.calls["validate"] == calls + 1


# --- a check that waits for another check's IAM call ------------------------------------------------

def test_a_check_waits_for_another_s_iam_call_timeout_plus_one_second(iam):
    """_outcome_of 2-13: a check of a token whose IAM call another check is making waits at most
    timeout + 1 s for it, then answers 502 iam_unavailable in its own words, without a call.
    (timeout -0.75 makes that bound 0.25 s; the IAM call in flight is planted, never finished.)"""
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, timeout=-0.75)
    token = "token-whose-check-never-ends"
    flight = validator._flights[hashlib.sha256(token.encode()).hexdigest()] = _Flight()
    # Under a mutant that waits forever, finish the planted flight (with nothing) after 1.5 s.
    rescue = threading.Timer(1.5, flight.done.set)
    rescue.daemon = True
    rescue.start()
    calls, started = iam.calls["validate"], time.monotonic()
    try:
        with pytest.raises(BadGateway) as raised:
            validator.validate(token)
        waited = time.monotonic() - started
    finally:
        rescue.cancel()
    assert 0.2 <= waited < 0.9
    assert (raised.value.status, raised.value.code, raised.value.message) == (
        502, "iam_unavailable", "Twilio IAM did not answer in time")
    assert iam.calls["validate"] == calls
