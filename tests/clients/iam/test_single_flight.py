"""One IAM call per token at a time (single flight: the checks that arrive meanwhile wait for its
answer), and a bound on IAM calls in flight."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from sfdcflex.clients.errors import IamBusy, IamUnavailable, TokenRefused
from sfdcflex.clients.iam import FlexTokenValidator, _Flight
from sfdcflex.errors import answer_for
from tests.support.errors import answered
from tests.support.iam import ACCOUNT_SID, AUTH_TOKEN


def _outcome(validator: FlexTokenValidator, token: str) -> str:
    try:
        return validator.validate(token).identity
    except TokenRefused as error:
        return answer_for(error).code


def test_concurrent_checks_of_one_token_share_one_iam_call(iam, clock):
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, timeout=5)
    good, bad = iam.issue_token("ada@example.com"), "garbage-token"
    for token, count in ((bad, 1), (good, 2)):
        iam.fail_next("validate", stall=0.15)  # the first call is slow: the others arrive meanwhile
        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(lambda _: _outcome(validator, token), range(8)))
        assert iam.calls["validate"] == count
        assert outcomes == (["invalid_token"] * 8 if token == bad else ["ada@example.com"] * 8)


def test_a_check_that_waited_for_another_s_iam_call_says_it_made_none(iam, clock):
    """A follower's answer is marked as from the cache: no IAM call of its own."""
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, timeout=5)
    token = iam.issue_token("ada@example.com")
    iam.fail_next("validate", stall=0.15)
    calls = iam.calls["validate"]
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(validator.validate_with_source, token)
        deadline = time.monotonic() + 5
        while iam.calls["validate"] == calls and time.monotonic() < deadline:
            time.sleep(0.005)     # the first check's IAM call is under way (and stalled)
        second = pool.submit(validator.validate_with_source, token)
        answers = sorted([first.result(5)[1], second.result(5)[1]])
    assert answers == [False, True]


def test_a_check_waits_for_another_s_iam_call_timeout_plus_one_second(iam):
    """A check of a token whose IAM call another check is making waits at most timeout + 1 s for
    it, then answers 502 iam_unavailable in its own words, without a call. (timeout -0.9 makes
    that bound 0.1 s; the IAM call in flight is planted, never finished.)"""
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, timeout=-0.9)
    token = "token-whose-check-never-ends"
    flight = validator._flights[validator._key(token)] = _Flight()
    # Should the check wait forever, finish the planted flight (with nothing) after 1.5 s.
    rescue = threading.Timer(1.5, flight.done.set)
    rescue.daemon = True
    rescue.start()
    calls, started = iam.calls["validate"], time.monotonic()
    try:
        with pytest.raises(IamUnavailable) as raised:
            validator.validate(token)
        waited = time.monotonic() - started
    finally:
        rescue.cancel()
    assert 0.08 <= waited < 0.5
    assert (*answered(raised.value), raised.value.message) == (
        502, "iam_unavailable", "Twilio IAM did not answer in time")
    assert iam.calls["validate"] == calls


def test_iam_calls_in_flight_are_bounded(iam, clock, monkeypatch):
    """A check that finds no place free waits IAM_QUEUE_SECONDS for one (0.5 s; 0.1 s here), then
    answers 503 iam_busy."""
    from sfdcflex.clients import iam as iam_module
    assert iam_module.IAM_QUEUE_SECONDS == 0.5
    monkeypatch.setattr(iam_module, "IAM_QUEUE_SECONDS", 0.1)
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, timeout=5, max_calls=1)
    release = threading.Event()
    iam.fail_next("validate", hold=release)  # the first call holds the only place until released
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(_outcome, validator, "garbage-1")
        try:
            deadline = time.monotonic() + 5
            while iam.calls["validate"] == 0 and time.monotonic() < deadline:
                time.sleep(0.005)  # polling the stand-in's counter: the call has no event to wait on
            started = time.monotonic()
            with pytest.raises(IamBusy) as busy:
                validator.validate("garbage-2")
            assert answered(busy.value)[1] == "iam_busy"
            assert answer_for(busy.value).headers["Retry-After"] == "1"
            assert 0.1 <= time.monotonic() - started < 1.0
        finally:
            release.set()
        assert first.result(5) == "invalid_token"
    assert iam.calls["validate"] == 1
    assert _outcome(validator, "garbage-2") == "invalid_token"  # not remembered as refused


def test_too_many_checks_at_once_are_503_in_these_words(iam, clock, monkeypatch):
    """The 0.5 s queue shortened; no place is ever free."""
    from sfdcflex.clients import iam as iam_module
    monkeypatch.setattr(iam_module, "IAM_QUEUE_SECONDS", 0.05)
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, max_calls=0)
    with pytest.raises(IamBusy) as busy:
        validator.validate("token-never-asked")
    answer = answer_for(busy.value)
    assert (answer.status, answer.code, answer.message, answer.headers) == (
        503, "iam_busy", "too many Flex token checks at once; retry shortly", {"Retry-After": "1"})
