"""Twilio IAM in trouble, or refusing this server's own credentials: a bad gateway in its own
words, never mistaken for a bad token, never remembered; and IAM's status table, in process through
a scripted Sender."""
from __future__ import annotations

import logging

import pytest

from sfdcflex.clients.errors import IamCredentialsRefused, IamError, IamUnavailable, TokenRefused
from sfdcflex.clients.iam import FlexTokenValidator
from tests.support.errors import answered
from tests.support.iam import ACCOUNT_SID, AUTH_TOKEN, IAM, refusal
from tests.support.senders import ScriptedSender


@pytest.mark.parametrize("fault", [{"status": 500}, {"status": 503, "body": b"<html>down</html>",
                                                     "content_type": "text/html"},
                                   {"status": 200, "body": b"<html>captive portal</html>",
                                    "content_type": "text/html"},
                                   {"reset": True}, {"stall": 3}])
def test_iam_trouble_is_a_bad_gateway(iam, validator, fault, monkeypatch):
    token = iam.issue_token("ada@example.com")
    iam.fail_next("validate", **fault)
    if "stall" in fault:  # the stalled call waits out the client's timeout: 0.15 s, not the 0.5 s
        monkeypatch.setattr(validator, "_timeout", 0.15)
    with pytest.raises(IamUnavailable) as raised:
        validator.validate(token)
    monkeypatch.undo()
    assert answered(raised.value) == (502, "iam_unavailable")
    assert token not in raised.value.message
    assert validator.validate(token).identity == "ada@example.com"


def test_iam_trouble_is_not_remembered(iam, validator):
    iam.fail_next("validate", status=500)
    with pytest.raises(IamUnavailable):
        validator.validate("not-a-flex-token")
    refusal(validator, "not-a-flex-token")
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


def test_a_200_whose_body_is_not_json_is_iam_unavailable_keeping_iam_s_status():
    sender = ScriptedSender()
    sender.answer(200, b"<html>captive portal</html>")
    with pytest.raises(IamUnavailable) as raised:
        FlexTokenValidator(IAM, ACCOUNT_SID, AUTH_TOKEN, transport=sender).validate("some-token")
    assert raised.value.status == 200
