"""The Flex token validator's connection to IAM: a kept-alive connection reused or replaced, the
default timeout, the URL setting, and what a check sends (in process, through a scripted Sender)."""
from __future__ import annotations

import json
import time

import pytest

from sfdcflex.clients.errors import UrlRefused
from sfdcflex.clients.iam import FlexTokenValidator
from sfdcflex.clients.pool import Transport
from tests.support.iam import ACCOUNT_SID, AUTH_TOKEN, IAM
from tests.support.senders import ScriptedSender
from tests.support.transports import TimeoutsSeen


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
