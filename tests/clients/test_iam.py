"""Flex token checks against Twilio IAM: the answer cache, the refusal memory, single flight, bounds.

The validator's own logic (IAM's status table, what it sends) is tested in process through a
scripted Sender; the wire against the IAM stand-in. What an agent is answered for each error:
tests/test_errors.py.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from sfdcflex.clients.errors import (IamBusy, IamCredentialsRefused, IamError, IamUnavailable, TokenMissing,
                                     TokenRefused, UrlRefused)
from sfdcflex.clients.iam import FlexAgent, FlexTokenValidator, _Flight
from sfdcflex.clients.pool import Transport
from sfdcflex.demo.standins import IamStandIn
from sfdcflex.errors import answer_for
from tests.support.clocks import FakeClock
from tests.support.senders import ScriptedSender
from tests.support.transports import TimeoutsSeen

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "iam-test-auth-token"
IAM = "https://iam.example.com"


@pytest.fixture
def iam():
    with IamStandIn(ACCOUNT_SID, AUTH_TOKEN) as standin:
        yield standin


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def validator(iam, clock):
    return FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, timeout=0.5)


def _answers_next(iam, answer: dict) -> None:
    """IAM's next validate call answers 200 with this JSON body."""
    iam.fail_next("validate", status=200, body=json.dumps(answer).encode(), content_type="application/json")


def _refusal(validator, token: str) -> TokenRefused:
    with pytest.raises(TokenRefused) as raised:
        validator.validate(token)
    return raised.value


def _outcome(validator: FlexTokenValidator, token: str) -> str:
    try:
        return validator.validate(token).identity
    except TokenRefused as error:
        return answer_for(error).code


def answered(error) -> tuple[int, str]:
    """The status and error code an agent gets for `error` (sfdcflex/errors.py's table)."""
    answer = answer_for(error)
    return answer.status, answer.code


# --- valid tokens and the answer cache ---------------------------------------------------------

def test_a_valid_token_gives_the_realm_user_id_and_roles(iam, validator):
    agent = validator.validate(iam.issue_token("ada@example.com"))
    assert agent.identity == "ada@example.com"
    assert "agent" in agent.roles
    assert agent.expires_at > time.time()


def test_a_second_validation_costs_no_iam_call(iam, validator):
    token = iam.issue_token("ada@example.com")
    validator.validate(token)
    assert validator.validate(token).identity == "ada@example.com"
    assert iam.calls["validate"] == 1


def test_the_cache_lasts_at_most_five_minutes(iam, validator, clock):
    token = iam.issue_token("ada@example.com", ttl=3600)
    validator.validate(token)
    clock.now += 299
    validator.validate(token)
    assert iam.calls["validate"] == 1
    clock.now += 2
    validator.validate(token)
    assert iam.calls["validate"] == 2


def test_an_answer_is_remembered_until_exactly_five_minutes(iam, validator, clock):
    """At the deadline itself the answer is stale."""
    token, start = iam.issue_token("ada@example.com", ttl=3600), clock.now
    validator.validate(token)
    calls = iam.calls["validate"]
    clock.now = start + 299.5
    assert validator.validate_with_source(token)[1] is True
    clock.now = start + 300
    assert validator.validate_with_source(token)[1] is False
    assert iam.calls["validate"] == calls + 1


def test_the_cache_ends_when_the_token_expires(iam, validator, clock):
    token = iam.issue_token("ada@example.com", ttl=60)
    validator.validate(token)
    clock.now += 61
    validator.validate(token)
    assert iam.calls["validate"] == 2


def test_the_cache_is_bounded(iam, clock):
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, cache_size=2)
    tokens = [iam.issue_token(f"agent{i}@example.com") for i in range(3)]
    for token in tokens:
        validator.validate(token)
    validator.validate(tokens[2])
    assert iam.calls["validate"] == 3
    validator.validate(tokens[0])
    assert iam.calls["validate"] == 4


def test_a_full_cache_keeps_exactly_its_size(iam, clock):
    """It evicts at its size, not past it."""
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, cache_size=2)
    tokens = [iam.issue_token(f"agent{i}@example.com") for i in range(3)]
    for token in tokens:
        validator.validate(token)
    assert [validator.validate_with_source(t)[1] for t in tokens[1:]] == [True, True]


def test_by_default_ten_thousand_answers_are_remembered_and_no_more(iam):
    """The 10,000 later answers are put in directly (as the IAM call's answer is): 10,000 IAM
    calls would take seconds."""
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


# --- what an IAM answer means ---------------------------------------------------------------------

@pytest.mark.parametrize("answer", [{"valid": True, "realm_user_id": ""}, {"valid": True, "realm_user_id": 42},
                                    {"valid": True}, {"valid": "true", "realm_user_id": "ada@example.com"},
                                    {"realm_user_id": "ada@example.com"}])
def test_only_valid_true_with_a_user_id_is_an_agent(iam, validator, answer):
    """`valid` must be exactly true and realm_user_id a non-empty string."""
    _answers_next(iam, answer)
    assert answered(_refusal(validator, "token-with-odd-answer"))[1] == "invalid_token"


@pytest.mark.parametrize("roles,names", [(["agent", 7, None, "admin"], ("agent", "admin")),
                                         ("agent", ()), (None, ())])
def test_roles_are_the_strings_of_iam_s_list(iam, validator, roles, names):
    _answers_next(iam, {"valid": True, "realm_user_id": "ada@example.com", "roles": roles,
                        "expiration": "2099-01-01T00:00:00.000Z"})
    assert validator.validate("token-with-roles").roles == names


@pytest.mark.parametrize("expiration,expires_at", [
    ("2030-01-02T03:04:05.000Z", 1893553445.0), (" 2030-01-02T03:04:05Z ", 1893553445.0),
    ("2030-01-02T03:04:05", 1893553445.0), ("2030-01-02T05:04:05+02:00", 1893553445.0),
    ("not a date", None), (1893553445, None), (None, None)])
def test_iam_s_expiration_is_read_as_utc_or_else_the_cache_period(iam, validator, clock, monkeypatch,
                                                                  expiration, expires_at):
    """A time without a zone is UTC (on a server whose local time is not); an unreadable one
    gives the agent the cache period (5 minutes from now)."""
    monkeypatch.setenv("TZ", "XYZ-05:30")   # POSIX form: needs no time zone database
    time.tzset()
    try:
        _answers_next(iam, {"valid": True, "realm_user_id": "ada@example.com", "expiration": expiration})
        agent = validator.validate("token-with-expiration")
    finally:
        monkeypatch.undo()
        time.tzset()
    assert agent.expires_at == (clock.now + 300 if expires_at is None else expires_at)


@pytest.mark.parametrize("expiration,cached_for", [
    (None, 300), (1234, 300), ("soon", 300), ("", 300),   # absent or unreadable: the cache's own limit
    ("+60", 60),                                         # naive ISO 8601 is UTC: 60 s from now
])
def test_the_cache_follows_iams_expiration_or_its_own_limit(iam, expiration, cached_for):
    clock = FakeClock()
    if expiration == "+60":
        expiration = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(clock.now + 60))
        clock.now = float(int(clock.now))   # the expiration has whole seconds
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock)
    _answers_next(iam, {"valid": True, "realm_user_id": "alice@example.com", "roles": ["agent", 7],
                        "expiration": expiration})
    agent = validator.validate("any-token")
    assert agent.identity == "alice@example.com"
    assert agent.roles == ("agent",)   # a role that is not a string is dropped
    clock.now += cached_for - 1
    assert validator.validate_with_source("any-token") == (agent, True)
    clock.now += 1
    _refusal(validator, "any-token")   # IAM is asked again, and the stand-in never issued this token


# --- refusals ------------------------------------------------------------------------------------

def test_a_made_up_token_is_forbidden(validator):
    assert answered(_refusal(validator, "not-a-flex-token"))[0] == 403


def test_iam_s_reason_is_passed_on(validator):
    """Unless it echoes the token."""
    refused = _refusal(validator, "not-a-flex-token")
    assert (answered(refused)[1], refused.message) == (
        "invalid_token", "The Flex token is not valid: Invalid Access Token")


def test_a_reason_that_echoes_the_token_is_left_out(iam, validator):
    token = "echoed-token-0123456789"
    _answers_next(iam, {"valid": False, "message": f"Token {token} is unknown"})
    assert _refusal(validator, token).message == "The Flex token is not valid"


@pytest.mark.parametrize("token", [None, "", "   ", 42, ["x"]])
def test_a_missing_token_is_a_bad_request_without_asking_iam(iam, validator, token):
    with pytest.raises(TokenMissing) as raised:
        validator.validate(token)
    assert answered(raised.value) == (400, "missing_token")
    assert iam.calls["validate"] == 0


def test_a_missing_token_and_an_overlong_one_are_refused_in_these_words(iam, validator):
    """16 KiB is still asked about (and IAM gives its reason); one more character is refused unasked."""
    with pytest.raises(TokenMissing) as missing:
        validator.validate("")
    assert (answered(missing.value)[1], missing.value.message) == (
        "missing_token", "The Flex token (body field Token) is missing")
    calls = iam.calls["validate"]
    longest = "t" * (16 * 1024)
    assert _refusal(validator, longest).message == "The Flex token is not valid: Invalid Access Token"
    assert iam.calls["validate"] == calls + 1
    overlong = _refusal(validator, longest + "t")
    assert (*answered(overlong), overlong.message) == (403, "invalid_token", "The Flex token is not valid")
    assert iam.calls["validate"] == calls + 1


def test_iam_s_400_is_an_invalid_token(iam, validator):
    """A 400 (IAM found no token in the request) is 403 invalid_token, in these words."""
    iam.fail_next("validate", status=400)
    refused = _refusal(validator, "token-iam-answers-400")
    assert (*answered(refused), refused.message) == (403, "invalid_token", "The Flex token is not valid")


def test_an_invalid_token_is_forbidden_and_remembered_for_a_minute(iam, validator, clock):
    token = iam.issue_token("ada@example.com")
    iam.revoke_token(token)
    for _ in range(3):
        refused = _refusal(validator, token)
        assert answered(refused) == (403, "invalid_token")
        assert token not in refused.message
    assert iam.calls["validate"] == 1
    clock.now += 61
    _refusal(validator, token)
    assert iam.calls["validate"] == 2


def test_a_refusal_is_remembered_until_exactly_one_minute(iam, validator, clock):
    """At the refusal's deadline itself IAM is asked again."""
    start = clock.now
    _refusal(validator, "refused-for-a-minute")
    calls = iam.calls["validate"]
    clock.now = start + 59.5
    _refusal(validator, "refused-for-a-minute")
    assert iam.calls["validate"] == calls
    clock.now = start + 60
    _refusal(validator, "refused-for-a-minute")
    assert iam.calls["validate"] == calls + 1


def test_remembered_refusals_keep_no_traceback_and_are_bounded(iam, clock):
    # A kept traceback would keep its frames, the token among their locals, for a minute.
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, cache_size=3)
    for n in range(5):
        _refusal(validator, f"bad-token-{n}")
    kept = [error for _, error in validator._refused.values()]
    assert len(kept) == 3 and all(error.__traceback__ is None for error in kept)


def test_a_full_refusal_memory_forgets_the_oldest_refusal(iam, clock):
    """Not the newest."""
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, cache_size=2)
    for n in range(3):
        _refusal(validator, f"refused-{n}")
    calls = iam.calls["validate"]
    _refusal(validator, "refused-2")          # the newest is still remembered: no IAM call
    _refusal(validator, "refused-1")
    assert iam.calls["validate"] == calls
    _refusal(validator, "refused-0")          # the oldest was given up: IAM is asked again
    assert iam.calls["validate"] == calls + 1


# --- IAM in trouble, or refusing us --------------------------------------------------------------

@pytest.mark.parametrize("fault", [{"status": 500}, {"status": 503, "body": b"<html>down</html>",
                                                     "content_type": "text/html"},
                                   {"status": 200, "body": b"<html>captive portal</html>",
                                    "content_type": "text/html"},
                                   {"reset": True}, {"stall": 3}])
def test_iam_trouble_is_a_bad_gateway(iam, validator, fault):
    token = iam.issue_token("ada@example.com")
    iam.fail_next("validate", **fault)
    with pytest.raises(IamUnavailable) as raised:
        validator.validate(token)
    assert answered(raised.value) == (502, "iam_unavailable")
    assert token not in raised.value.message
    assert validator.validate(token).identity == "ada@example.com"


def test_iam_trouble_is_not_remembered(iam, validator):
    iam.fail_next("validate", status=500)
    with pytest.raises(IamUnavailable):
        validator.validate("not-a-flex-token")
    _refusal(validator, "not-a-flex-token")
    assert iam.calls["validate"] == 2


def test_iam_rate_limiting_is_not_mistaken_for_a_bad_token(iam, validator):
    token = iam.issue_token("ada@example.com")
    iam.fail_next("validate", status=429)
    with pytest.raises(IamUnavailable) as raised:
        validator.validate(token)
    assert answered(raised.value)[1] == "iam_unavailable" and "429" in raised.value.message


def test_iam_s_answer_without_a_json_object_names_its_status(iam, validator):
    iam.fail_next("validate", status=429, body=b"slow down", content_type="text/plain")
    with pytest.raises(IamUnavailable) as raised:
        validator.validate("token-iam-answers-429")
    assert (answered(raised.value)[1], raised.value.message) == (
        "iam_unavailable", "Twilio IAM answered 429 without a JSON object")


def test_a_stalled_iam_is_named_in_the_502(iam, clock):
    """The service's name is in the upstream failure's words."""
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, timeout=0.1)
    iam.fail_next("validate", stall=0.3)
    with pytest.raises(IamUnavailable) as raised:
        validator.validate("token-iam-stalls-on")
    assert (answered(raised.value)[1], raised.value.message) == (
        "iam_unavailable", "Twilio IAM did not answer in 0.1 s")


def test_wrong_credentials_tell_the_operator_what_to_check(iam, clock, caplog):
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, "wrong-auth-token", clock=clock)
    with pytest.raises(IamCredentialsRefused) as raised:
        validator.validate(iam.issue_token("ada@example.com"))
    # The hint is for the operator's log; a client is told no configuration names.
    assert answered(raised.value)[0] == 502
    assert "ACCOUNT_SID" in caplog.text and "AUTH_TOKEN" in caplog.text
    assert "ACCOUNT_SID" not in raised.value.message and "AUTH_TOKEN" not in raised.value.message
    assert "wrong-auth-token" not in raised.value.message + caplog.text


def test_iam_refusing_our_credentials_is_logged_and_answered_in_these_words(iam, clock, caplog):
    """The operator's log line and the client's 502, exactly."""
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, "wrong-auth-token", clock=clock)
    with caplog.at_level(logging.ERROR, logger="sfdcflex"), pytest.raises(IamCredentialsRefused) as raised:
        validator.validate("any-token")
    assert caplog.messages == ["Twilio IAM answered 401 to the token check: check ACCOUNT_SID, AUTH_TOKEN "
                               "and TWILIO_IAM_URL"]
    assert (*answered(raised.value), raised.value.message) == (
        502, "iam_credentials_rejected",
        "Twilio IAM refused this server's own credentials, so no Flex token can be checked")


def test_an_unknown_account_tells_the_operator(iam, clock, caplog):
    validator = FlexTokenValidator(iam.url, "AC" + "9" * 32, AUTH_TOKEN, clock=clock)
    with pytest.raises(IamCredentialsRefused) as raised:
        validator.validate(iam.issue_token("ada@example.com"))
    assert "ACCOUNT_SID" in caplog.text and answered(raised.value)[1] == "iam_credentials_rejected"
    assert "ACCOUNT_SID" not in raised.value.message


# --- one IAM call per token at a time, and a bound on calls in flight --------------------------

def test_concurrent_checks_of_one_token_share_one_iam_call(iam, clock):
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, timeout=5)
    good, bad = iam.issue_token("ada@example.com"), "garbage-token"
    for token, count in ((bad, 1), (good, 2)):
        iam.fail_next("validate", stall=0.3)  # the first call is slow: the others arrive meanwhile
        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(lambda _: _outcome(validator, token), range(8)))
        assert iam.calls["validate"] == count
        assert outcomes == (["invalid_token"] * 8 if token == bad else ["ada@example.com"] * 8)


def test_a_check_that_waited_for_another_s_iam_call_says_it_made_none(iam, clock):
    """A follower's answer is marked as from the cache: no IAM call of its own."""
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


def test_a_check_waits_for_another_s_iam_call_timeout_plus_one_second(iam):
    """A check of a token whose IAM call another check is making waits at most timeout + 1 s for
    it, then answers 502 iam_unavailable in its own words, without a call. (timeout -0.75 makes
    that bound 0.25 s; the IAM call in flight is planted, never finished.)"""
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, timeout=-0.75)
    token = "token-whose-check-never-ends"
    flight = validator._flights[hashlib.sha256(token.encode()).hexdigest()] = _Flight()
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
    assert 0.2 <= waited < 0.9
    assert (*answered(raised.value), raised.value.message) == (
        502, "iam_unavailable", "Twilio IAM did not answer in time")
    assert iam.calls["validate"] == calls


def test_iam_calls_in_flight_are_bounded(iam, clock):
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
            assert 0.4 <= time.monotonic() - started < 1.4
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


# --- the connection, the defaults, the setting ------------------------------------------------------

def test_a_token_check_is_sent_again_when_iam_closed_the_kept_alive_connection(iam, validator):
    """A check is safe to repeat on a fresh connection."""
    assert validator.validate(iam.issue_token("ada@example.com")).identity == "ada@example.com"
    iam.drop_connections()
    assert validator.validate(iam.issue_token("bob@example.com")).identity == "bob@example.com"


def test_a_token_check_reuses_a_kept_alive_connection_however_long_it_was_idle(iam, clock):
    """The check is marked idempotent: a connection idle for longer than a non-idempotent request
    may use (here 0.05 s instead of 1 s) is still used for it."""
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock,
                                   transport=Transport(just_used_seconds=0.05))
    validator.validate(iam.issue_token("ada@example.com"))
    opened = iam.connections_accepted
    time.sleep(0.1)
    validator.validate(iam.issue_token("bob@example.com"))
    assert iam.connections_accepted == opened


def test_an_iam_call_may_take_five_seconds_by_default(iam):
    transport = TimeoutsSeen()
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, transport=transport)
    try:
        assert validator.validate(iam.issue_token("ada@example.com")).identity == "ada@example.com"
    finally:
        transport.close()
    assert transport.timeouts == [5.0]


def test_plain_http_to_a_remote_iam_is_refused_naming_the_setting():
    with pytest.raises(UrlRefused) as raised:
        FlexTokenValidator("http://iam.twilio.com", ACCOUNT_SID, AUTH_TOKEN)
    assert raised.value.setting == "TWILIO_IAM_URL"
    assert str(raised.value).endswith("TWILIO_IAM_URL must use https:// (http:// is allowed only for "
                                      "localhost / 127.0.0.1 / ::1)")


# --- the validator's own logic, in process ---------------------------------------------------------

@pytest.mark.parametrize("status,kind", [(400, TokenRefused), (401, IamCredentialsRefused),
                                         (404, IamCredentialsRefused), (403, IamUnavailable),
                                         (429, IamUnavailable), (500, IamUnavailable), (503, IamUnavailable)])
def test_iam_s_status_table(status, kind):
    """400 is a refused token, 401 and 404 our own credentials; any other status but 200 is IAM
    failing. Each error keeps IAM's status."""
    sender = ScriptedSender()
    sender.answer(status, {"message": "said"})
    validator = FlexTokenValidator(IAM, ACCOUNT_SID, AUTH_TOKEN, transport=sender)
    with pytest.raises(IamError) as raised:
        validator.validate("some-token")
    assert type(raised.value) is kind and raised.value.status == status


def test_a_token_iam_calls_invalid_keeps_iam_s_200_also_when_its_refusal_is_remembered():
    """A 200 saying the token is not valid is a refused token carrying IAM's status, and so is the
    remembered refusal the next check of that token raises without asking IAM."""
    sender = ScriptedSender()
    sender.answer(200, {"valid": False})
    validator = FlexTokenValidator(IAM, ACCOUNT_SID, AUTH_TOKEN, transport=sender)
    for _ in range(2):
        with pytest.raises(TokenRefused) as raised:
            validator.validate("some-token")
        assert raised.value.status == 200
    assert len(sender.sent) == 1


def test_a_200_whose_body_is_not_json_is_iam_unavailable_keeping_iam_s_status():
    sender = ScriptedSender()
    sender.answer(200, b"<html>captive portal</html>")
    with pytest.raises(IamUnavailable) as raised:
        FlexTokenValidator(IAM, ACCOUNT_SID, AUTH_TOKEN, transport=sender).validate("some-token")
    assert raised.value.status == 200


def test_a_check_posts_the_token_as_json_with_the_account_s_basic_auth():
    sender = ScriptedSender()
    sender.answer(200, {"valid": True, "realm_user_id": "ada@example.com"})
    FlexTokenValidator(IAM, ACCOUNT_SID, AUTH_TOKEN, transport=sender).validate("the-token")
    sent = sender.sent[0]
    assert (sent.method, sent.url, sent.idempotent, json.loads(sent.body)) == (
        "POST", f"{IAM}/v1/Accounts/{ACCOUNT_SID}/Tokens/validate", True, {"token": "the-token"})
    assert sent.headers["Authorization"] == (   # RFC 7617: base64 of "SID:token"
        "Basic QUMxMTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTppYW0tdGVzdC1hdXRoLXRva2Vu")
    assert sent.headers["Content-Type"] == "application/json"
