"""Checking a Flex token against Twilio IAM: what IAM's answer means (who the agent is, their roles,
until when), and the tokens refused, in their words.

What an agent is answered for each error: tests/test_errors.py.
"""
from __future__ import annotations

import time

import pytest

from sfdcflex.clients.errors import TokenMissing, TokenRefused
from sfdcflex.clients.iam import FlexTokenValidator
from tests.support.errors import answered
from tests.support.iam import ACCOUNT_SID, AUTH_TOKEN, IAM, answers_next, refusal
from tests.support.senders import ScriptedSender


def test_a_valid_token_gives_the_realm_user_id_and_roles(iam, validator):
    agent = validator.validate(iam.issue_token("ada@example.com"))
    assert agent.identity == "ada@example.com"
    assert "agent" in agent.roles
    assert agent.expires_at > time.time()


@pytest.mark.parametrize("answer", [{"valid": True, "realm_user_id": ""}, {"valid": True, "realm_user_id": 42},
                                    {"valid": True}, {"valid": "true", "realm_user_id": "ada@example.com"},
                                    {"realm_user_id": "ada@example.com"}])
def test_only_valid_true_with_a_user_id_is_an_agent(iam, validator, answer):
    """`valid` must be exactly true and realm_user_id a non-empty string."""
    answers_next(iam, answer)
    assert answered(refusal(validator, "token-with-odd-answer"))[1] == "invalid_token"


@pytest.mark.parametrize("roles,names", [(["agent", 7, None, "admin"], ("agent", "admin")),
                                         ("agent", ()), (None, ())])
def test_roles_are_the_strings_of_iam_s_list(iam, validator, roles, names):
    answers_next(iam, {"valid": True, "realm_user_id": "ada@example.com", "roles": roles,
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
        answers_next(iam, {"valid": True, "realm_user_id": "ada@example.com", "expiration": expiration})
        agent = validator.validate("token-with-expiration")
    finally:
        monkeypatch.undo()
        time.tzset()
    assert agent.expires_at == (clock.now + 300 if expires_at is None else expires_at)


def test_a_made_up_token_is_forbidden(validator):
    assert answered(refusal(validator, "not-a-flex-token"))[0] == 403


def test_iam_s_reason_is_passed_on(validator):
    """Unless it echoes the token."""
    refused = refusal(validator, "not-a-flex-token")
    assert (answered(refused)[1], refused.message) == (
        "invalid_token", "The Flex token is not valid: Invalid Access Token")


def test_a_reason_that_echoes_the_token_is_left_out(iam, validator):
    token = "echoed-token-0123456789"
    answers_next(iam, {"valid": False, "message": f"Token {token} is unknown"})
    assert refusal(validator, token).message == "The Flex token is not valid"


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
    assert refusal(validator, longest).message == "The Flex token is not valid: Invalid Access Token"
    assert iam.calls["validate"] == calls + 1
    overlong = refusal(validator, longest + "t")
    assert (*answered(overlong), overlong.message) == (403, "invalid_token", "The Flex token is not valid")
    assert iam.calls["validate"] == calls + 1


def test_iam_s_400_is_an_invalid_token(iam, validator):
    """A 400 (IAM found no token in the request) is 403 invalid_token, in these words."""
    iam.fail_next("validate", status=400)
    refused = refusal(validator, "token-iam-answers-400")
    assert (*answered(refused), refused.message) == (403, "invalid_token", "The Flex token is not valid")


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
