"""Flex token checks that mutation testing found unchecked (mutmut 3.8, issue 18): what a refusal
says, which remembered answers a full cache gives up, how long a check waits for another's IAM call.

Each test names the surviving mutants it kills; the equivalent ones are listed in README's
reliability report. One IAM stand-in serves the whole module, so counts are taken as differences.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from sfdcflex.clients.iam import FlexTokenValidator, _Flight
from tests.clients.test_iam import FakeClock
from sfdcflex.demo.standins import IamStandIn
from sfdcflex.runtime.errors import BadGateway, BadRequest, ConfigError, Forbidden, ServiceUnavailable

ACCOUNT_SID = "AC" + "2" * 32
AUTH_TOKEN = "iam-mutants-auth-token"


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


# --- what is asked, what is refused before asking ----------------------------------------------------

def test_a_missing_token_and_an_overlong_one_are_refused_in_these_words(iam, validator):
    """validate_with_source: the 400's and the overlong token's words and codes."""
    with pytest.raises(BadRequest) as missing:
        validator.validate("")
    assert (missing.value.code, missing.value.message) == (
        "missing_token", "The Flex token (body field Token) is missing")
    calls = iam.calls["validate"]
    longest = "t" * (16 * 1024)
    # 16 KiB is still asked about (and IAM gives its reason); one more character is refused unasked.
    assert _refusal(validator, longest).message == "The Flex token is not valid: Invalid Access Token"
    assert iam.calls["validate"] == calls + 1
    overlong = _refusal(validator, longest + "t")
    assert (overlong.status, overlong.code, overlong.message) == (403, "invalid_token", "The Flex token is not valid")
    assert iam.calls["validate"] == calls + 1


def test_iam_s_400_is_an_invalid_token(iam, validator):
    """_ask_iam: a 400 (IAM found no token in the request) is 403 invalid_token, in these words."""
    iam.fail_next("validate", status=400)
    refused = _refusal(validator, "token-iam-answers-400")
    assert (refused.status, refused.code, refused.message) == (403, "invalid_token", "The Flex token is not valid")


def test_iam_s_answer_without_a_json_object_names_its_status(iam, validator):
    """_ask_iam: the 502's words."""
    iam.fail_next("validate", status=429, body=b"slow down", content_type="text/plain")
    with pytest.raises(BadGateway) as raised:
        validator.validate("token-iam-answers-429")
    assert (raised.value.code, raised.value.message) == ("iam_unavailable", "Twilio IAM answered 429 without a JSON object")


def test_iam_refusing_our_credentials_is_logged_and_answered_in_these_words(iam, clock, caplog):
    """_ask_iam: the operator's log line and the client's 502, exactly."""
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, "wrong-auth-token", clock=clock)
    with caplog.at_level(logging.ERROR, logger="sfdcflex"), pytest.raises(BadGateway) as raised:
        validator.validate("any-token")
    assert caplog.messages == ["Twilio IAM answered 401 to the token check: check ACCOUNT_SID, AUTH_TOKEN "
                               "and TWILIO_IAM_URL"]
    assert (raised.value.status, raised.value.code, raised.value.message) == (
        502, "iam_credentials_rejected",
        "Twilio IAM refused this server's own credentials, so no Flex token can be checked")


def test_a_token_check_is_sent_again_when_iam_closed_the_kept_alive_connection(iam, validator):
    """A check is safe to repeat on a fresh connection."""
    assert validator.validate(iam.issue_token("ada@example.com")).identity == "ada@example.com"
    iam.drop_connections()
    assert validator.validate(iam.issue_token("bob@example.com")).identity == "bob@example.com"


def test_a_token_check_reuses_a_kept_alive_connection_however_long_it_was_idle(iam, clock):
    """_ask_iam 6, 14, 23 (the check not marked idempotent: a connection idle for longer than a
    non-idempotent request may use, here 0.05 s instead of 1 s, would be given up for a new one)."""
    from sfdcflex.clients.pool import Transport
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock,
                                   transport=Transport(just_used_seconds=0.05))
    validator.validate(iam.issue_token("ada@example.com"))
    opened = iam.connections_accepted
    time.sleep(0.1)
    validator.validate(iam.issue_token("bob@example.com"))
    assert iam.connections_accepted == opened


# --- what an IAM answer means ---------------------------------------------------------------------------

@pytest.mark.parametrize("answer", [{"valid": True, "realm_user_id": ""}, {"valid": True, "realm_user_id": 42},
                                    {"valid": True}, {"valid": "true", "realm_user_id": "ada@example.com"},
                                    {"realm_user_id": "ada@example.com"}])
def test_only_valid_true_with_a_user_id_is_an_agent(iam, validator, answer):
    """_agent_from: `valid` must be exactly true and realm_user_id a non-empty string."""
    _answers_next(iam, answer)
    assert _refusal(validator, "token-with-odd-answer").code == "invalid_token"


@pytest.mark.parametrize("roles,names", [(["agent", 7, None, "admin"], ("agent", "admin")),
                                         ("agent", ()), (None, ())])
def test_roles_are_the_strings_of_iam_s_list(iam, validator, roles, names):
    """_agent_from: roles."""
    _answers_next(iam, {"valid": True, "realm_user_id": "ada@example.com", "roles": roles,
                        "expiration": "2099-01-01T00:00:00.000Z"})
    assert validator.validate("token-with-roles").roles == names


@pytest.mark.parametrize("expiration,expires_at", [
    ("2030-01-02T03:04:05.000Z", 1893553445.0), (" 2030-01-02T03:04:05Z ", 1893553445.0),
    ("2030-01-02T03:04:05", 1893553445.0), ("2030-01-02T05:04:05+02:00", 1893553445.0),
    ("not a date", None), (1893553445, None), (None, None)])
def test_iam_s_expiration_is_read_as_utc_or_else_the_cache_period(iam, validator, clock, monkeypatch,
                                                                  expiration, expires_at):
    """_agent_from, _parse_expiration 4, 6: a time without a zone is UTC (on a server whose local
    time is not); an unreadable one gives the agent the cache period (5 minutes from now)."""
    monkeypatch.setenv("TZ", "XYZ-05:30")   # POSIX form: needs no time zone database
    time.tzset()
    try:
        _answers_next(iam, {"valid": True, "realm_user_id": "ada@example.com", "expiration": expiration})
        agent = validator.validate("token-with-expiration")
    finally:
        monkeypatch.undo()
        time.tzset()
    assert agent.expires_at == (clock.now + 300 if expires_at is None else expires_at)


# --- how long answers are remembered -----------------------------------------------------------------

def test_an_answer_is_remembered_until_exactly_five_minutes(iam, validator, clock):
    """_cached (the deadline itself is past), _remember, max_cache_ttl's 300 s."""
    token, start = iam.issue_token("ada@example.com", ttl=3600), clock.now
    validator.validate(token)
    calls = iam.calls["validate"]
    clock.now = start + 299.5
    assert validator.validate_with_source(token)[1] is True
    clock.now = start + 300
    assert validator.validate_with_source(token)[1] is False
    assert iam.calls["validate"] == calls + 1


def test_a_refusal_is_remembered_until_exactly_one_minute(iam, validator, clock):
    """_cached (the refusal's deadline itself is past), NEGATIVE_TTL's 60 s."""
    start = clock.now
    _refusal(validator, "refused-for-a-minute")
    calls = iam.calls["validate"]
    clock.now = start + 59.5
    _refusal(validator, "refused-for-a-minute")
    assert iam.calls["validate"] == calls
    clock.now = start + 60
    _refusal(validator, "refused-for-a-minute")
    assert iam.calls["validate"] == calls + 1


def test_a_full_cache_keeps_exactly_its_size(iam, clock):
    """_remember (evicting at the size, not past it)."""
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, cache_size=2)
    tokens = [iam.issue_token(f"agent{i}@example.com") for i in range(3)]
    for token in tokens:
        validator.validate(token)
    assert [validator.validate_with_source(t)[1] for t in tokens[1:]] == [True, True]


def test_too_many_checks_at_once_are_503_in_these_words(iam, clock, monkeypatch):
    """_ask_iam_within_bound: the 503's words (the 0.5 s queue shortened; no place is ever free)."""
    from sfdcflex.clients import iam as iam_module
    monkeypatch.setattr(iam_module, "IAM_QUEUE_SECONDS", 0.05)
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, max_calls=0)
    with pytest.raises(ServiceUnavailable) as busy:
        validator.validate("token-never-asked")
    assert (busy.value.status, busy.value.code, busy.value.message, busy.value.headers) == (
        503, "iam_busy", "too many Flex token checks at once; retry shortly", {"Retry-After": "1"})


def test_a_check_that_waited_for_another_s_iam_call_says_it_made_none(iam, clock):
    """validate_with_source (a follower's answer marked as from the cache: no IAM call of its own)."""
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, timeout=5)
    token = iam.issue_token("ada@example.com")
    iam.fail_next("validate", stall=0.3)
    calls = iam.calls["validate"]
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(validator.validate_with_source, token)
        deadline = time.monotonic() + 5
        while iam.calls["validate"] == calls and time.monotonic() < deadline:
            time.sleep(0.005)     # the first check's IAM call is under way (and stalled)
        second = pool.submit(validator.validate_with_source, token)
        answers = sorted([first.result(5)[1], second.result(5)[1]])
    assert answers == [False, True]


def test_a_stalled_iam_is_named_in_the_502(iam, clock):
    """_ask_iam 18 (the service's name in the upstream failure's words)."""
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, timeout=0.1)
    iam.fail_next("validate", stall=0.3)
    with pytest.raises(BadGateway) as raised:
        validator.validate("token-iam-stalls-on")
    assert (raised.value.code, raised.value.message) == ("iam_unavailable", "Twilio IAM did not answer in 0.1 s")


def test_a_plain_http_iam_url_is_refused_naming_the_setting():
    """__init__ 5, 9, 10 (the setting's name in the start-up error)."""
    with pytest.raises(ConfigError) as raised:
        FlexTokenValidator("http://iam.twilio.com", ACCOUNT_SID, AUTH_TOKEN)
    assert str(raised.value).endswith("TWILIO_IAM_URL must use https:// (http:// is allowed only for "
                                      "localhost / 127.0.0.1 / ::1)")
