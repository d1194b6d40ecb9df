"""Flex token validation against the Twilio IAM stand-in, and its positive-answer cache."""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from sfdcflex.runtime.errors import BadGateway, BadRequest, ConfigError, Forbidden, ServiceUnavailable
from sfdcflex.clients.iam import FlexTokenValidator
from sfdcflex.demo.standins import IamStandIn

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "iam-test-auth-token"


class FakeClock:
    """A clock the test moves by hand, so cache expiry needs no sleeping."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


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


def test_the_cache_ends_when_the_token_expires(iam, validator, clock):
    token = iam.issue_token("ada@example.com", ttl=60)
    validator.validate(token)
    clock.now += 61
    validator.validate(token)
    assert iam.calls["validate"] == 2


def test_an_invalid_token_is_forbidden_and_remembered_for_a_minute(iam, validator, clock):
    token = iam.issue_token("ada@example.com")
    iam.revoke_token(token)
    for _ in range(3):
        with pytest.raises(Forbidden) as raised:
            validator.validate(token)
        assert raised.value.status == 403 and raised.value.code == "invalid_token"
        assert token not in raised.value.message
    assert iam.calls["validate"] == 1
    clock.now += 61
    with pytest.raises(Forbidden):
        validator.validate(token)
    assert iam.calls["validate"] == 2


def test_iam_trouble_is_not_remembered(iam, validator):
    iam.fail_next("validate", status=500)
    with pytest.raises(BadGateway):
        validator.validate("not-a-flex-token")
    with pytest.raises(Forbidden):
        validator.validate("not-a-flex-token")
    assert iam.calls["validate"] == 2


def test_concurrent_checks_of_one_token_share_one_iam_call(iam, clock):
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, timeout=5)
    good, bad = iam.issue_token("ada@example.com"), "garbage-token"
    for token, count in ((bad, 1), (good, 2)):
        iam.fail_next("validate", stall=0.3)  # the first call is slow: the others arrive meanwhile
        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(lambda _: _outcome(validator, token), range(8)))
        assert iam.calls["validate"] == count
        assert outcomes == (["invalid_token"] * 8 if token == bad else ["ada@example.com"] * 8)


def _outcome(validator: FlexTokenValidator, token: str) -> str:
    try:
        return validator.validate(token).identity
    except Forbidden as error:
        return error.code


def test_a_made_up_token_is_forbidden(validator):
    with pytest.raises(Forbidden):
        validator.validate("not-a-flex-token")


@pytest.mark.parametrize("token", [None, "", "   ", 42, ["x"]])
def test_a_missing_token_is_a_bad_request_without_asking_iam(iam, validator, token):
    with pytest.raises(BadRequest) as raised:
        validator.validate(token)
    assert raised.value.status == 400 and raised.value.code == "missing_token"
    assert iam.calls["validate"] == 0


def test_wrong_credentials_tell_the_operator_what_to_check(iam, clock, caplog):
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, "wrong-auth-token", clock=clock)
    with pytest.raises(BadGateway) as raised:
        validator.validate(iam.issue_token("ada@example.com"))
    # The hint is for the operator's log; a client is told no configuration names.
    assert "ACCOUNT_SID" in caplog.text and "AUTH_TOKEN" in caplog.text
    assert "ACCOUNT_SID" not in raised.value.message and "AUTH_TOKEN" not in raised.value.message
    assert "wrong-auth-token" not in raised.value.message + caplog.text


@pytest.mark.parametrize("fault", [{"status": 500}, {"status": 503, "body": b"<html>down</html>",
                                                     "content_type": "text/html"},
                                   {"status": 200, "body": b"<html>captive portal</html>",
                                    "content_type": "text/html"},
                                   {"reset": True}, {"stall": 3}])
def test_iam_trouble_is_a_bad_gateway(iam, validator, fault):
    token = iam.issue_token("ada@example.com")
    iam.fail_next("validate", **fault)
    with pytest.raises(BadGateway) as raised:
        validator.validate(token)
    assert raised.value.status == 502 and raised.value.code == "iam_unavailable"
    assert token not in raised.value.message
    assert validator.validate(token).identity == "ada@example.com"


def test_the_cache_is_bounded(iam, clock):
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, cache_size=2)
    tokens = [iam.issue_token(f"agent{i}@example.com") for i in range(3)]
    for token in tokens:
        validator.validate(token)
    validator.validate(tokens[2])
    assert iam.calls["validate"] == 3
    validator.validate(tokens[0])
    assert iam.calls["validate"] == 4


def test_plain_http_to_a_remote_iam_is_refused():
    with pytest.raises(ConfigError):
        FlexTokenValidator("http://iam.twilio.com", ACCOUNT_SID, AUTH_TOKEN)


def test_iam_rate_limiting_is_not_mistaken_for_a_bad_token(iam, validator):
    token = iam.issue_token("ada@example.com")
    iam.fail_next("validate", status=429)
    with pytest.raises(BadGateway) as raised:
        validator.validate(token)
    assert raised.value.code == "iam_unavailable" and "429" in raised.value.message


def test_an_unknown_account_tells_the_operator(iam, clock, caplog):
    validator = FlexTokenValidator(iam.url, "AC" + "9" * 32, AUTH_TOKEN, clock=clock)
    with pytest.raises(BadGateway) as raised:
        validator.validate(iam.issue_token("ada@example.com"))
    assert "ACCOUNT_SID" in caplog.text and raised.value.code == "iam_credentials_rejected"
    assert "ACCOUNT_SID" not in raised.value.message


def test_remembered_refusals_keep_no_traceback_and_are_bounded(iam, clock):
    # A kept traceback would keep its frames, the token among their locals, for a minute.
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, cache_size=3)
    for n in range(5):
        with pytest.raises(Forbidden):
            validator.validate(f"bad-token-{n}")
    kept = [error for _, error in validator._refused.values()]
    assert len(kept) == 3 and all(error.__traceback__ is None for error in kept)


def test_iam_calls_in_flight_are_bounded(iam, clock):
    validator = FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, timeout=5, max_calls=1)
    iam.fail_next("validate", stall=1.5)  # the first call holds the only place
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(_outcome, validator, "garbage-1")
        deadline = time.monotonic() + 5
        while iam.calls["validate"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)  # polling the stand-in's counter: the call has no event to wait on
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable) as busy:
            validator.validate("garbage-2")
        assert busy.value.code == "iam_busy" and busy.value.headers["Retry-After"] == "1"
        assert 0.4 <= time.monotonic() - started < 1.4
        assert first.result(5) == "invalid_token"
    assert iam.calls["validate"] == 1
    assert _outcome(validator, "garbage-2") == "invalid_token"  # not remembered as refused


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
    iam.fail_next("validate", status=200, body=json.dumps(
        {"valid": True, "realm_user_id": "alice@example.com", "roles": ["agent", 7],
         "expiration": expiration}).encode())
    agent = validator.validate("any-token")
    assert agent.identity == "alice@example.com"
    assert agent.roles == ("agent",)   # a role that is not a string is dropped
    clock.now += cached_for - 1
    assert validator.validate_with_source("any-token") == (agent, True)
    clock.now += 1
    with pytest.raises(Forbidden):   # IAM is asked again, and the stand-in never issued this token
        validator.validate("any-token")
