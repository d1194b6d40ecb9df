"""The Salesforce client's OAuth endpoints: the authorize URL with PKCE, the code exchange,
refresh-token rotation, the token endpoint's errors in their words, revoke and userinfo.

Odd answers are planted in the Salesforce stand-in with `fail_next`. What an agent is answered for
each error: tests/test_errors.py.
"""
from __future__ import annotations

import base64
import hashlib
import secrets
import urllib.parse

import pytest

from sfdcflex.clients.errors import CodeRefused, InvalidGrant, RequestLimitExceeded, SalesforceError, SessionExpired
from sfdcflex.clients.salesforce import SalesforceClient
from sfdcflex.demo.standins import submit_consent
from tests.support.errors import answered, caught
from tests.support.salesforce import (CLIENT_ID, CLIENT_SECRET, ORG, REDIRECT_URI, USERNAME, answers_next,
                                      rest_error)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def consent_code(client: SalesforceClient, challenge: str, state: str = "state-1") -> str:
    location = submit_consent(client.authorize_url(REDIRECT_URI, state, challenge), USERNAME)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    assert query["state"] == [state]
    return query["code"][0]


def test_authorize_url_asks_for_a_code_with_pkce_s256(client, sf):
    url = client.authorize_url(REDIRECT_URI, "st", "challenge")
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{sf.url}/services/oauth2/authorize"
    assert query == {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI,
                     "state": "st", "scope": "api refresh_token", "code_challenge": "challenge",
                     "code_challenge_method": "S256"}


def test_login_url_hosts_oauth_when_given(sf):
    client = SalesforceClient(ORG, CLIENT_ID, CLIENT_SECRET, login_url=sf.url)
    assert client.authorize_url(REDIRECT_URI, "s", "c").startswith(f"{sf.url}/services/oauth2/authorize?")


def test_exchange_code_with_the_right_verifier_gives_tokens(client):
    verifier, challenge = pkce_pair()
    answer = client.exchange_code(consent_code(client, challenge), REDIRECT_URI, verifier)
    assert answer["access_token"] and answer["refresh_token"] and answer["instance_url"] and answer["id"]
    assert client.userinfo(answer["access_token"])["preferred_username"] == USERNAME


def test_exchange_with_a_wrong_verifier_is_an_invalid_code(client):
    _, challenge = pkce_pair()
    with pytest.raises(CodeRefused) as raised:
        client.exchange_code(consent_code(client, challenge), REDIRECT_URI, pkce_pair()[0])
    assert answered(raised.value) == (400, "invalid_code")


def test_a_code_works_once(client):
    verifier, challenge = pkce_pair()
    code = consent_code(client, challenge)
    client.exchange_code(code, REDIRECT_URI, verifier)
    with pytest.raises(CodeRefused) as raised:
        client.exchange_code(code, REDIRECT_URI, verifier)
    assert answered(raised.value)[1] == "invalid_code"


def test_a_wrong_client_secret_tells_the_operator_in_the_log_only(sf, caplog):
    client = SalesforceClient(sf.url, CLIENT_ID, "wrong-secret-value")
    verifier, challenge = pkce_pair()
    with pytest.raises(SalesforceError) as raised:
        client.exchange_code(consent_code(client, challenge), REDIRECT_URI, verifier)
    assert answered(raised.value)[0] == 502
    assert "SFDC_CLIENT_ID" not in raised.value.message and "SFDC_CLIENT_SECRET" in caplog.text
    assert "wrong-secret-value" not in raised.value.message + caplog.text


def test_refresh_rotates_the_refresh_token(client, tokens):
    first = client.refresh(tokens["refresh_token"])
    assert first["access_token"] != tokens["access_token"]
    assert first["refresh_token"] != tokens["refresh_token"]
    second = client.refresh(first["refresh_token"])
    assert client.userinfo(second["access_token"])["preferred_username"] == USERNAME


def test_reusing_a_rotated_refresh_token_kills_the_link(client, tokens):
    newer = client.refresh(tokens["refresh_token"])
    with pytest.raises(InvalidGrant) as raised:
        client.refresh(tokens["refresh_token"])
    assert answered(raised.value) == (404, "not_linked")
    assert "connect Salesforce again" in raised.value.message
    assert tokens["refresh_token"] not in raised.value.message
    with pytest.raises(InvalidGrant):
        client.refresh(newer["refresh_token"])


def test_a_token_answer_without_access_token_is_a_bad_gateway(client, sf, tokens):
    sf.fail_next("token", status=200, body=b'{"token_type": "Bearer"}')
    with pytest.raises(SalesforceError) as raised:
        client.refresh(tokens["refresh_token"])
    assert answered(raised.value)[0] == 502


def test_a_token_endpoint_html_page_is_a_bad_gateway(client, sf, tokens):
    sf.fail_next("token", status=503, body=b"<html>Down for maintenance</html>", content_type="text/html")
    with pytest.raises(SalesforceError) as raised:
        client.refresh(tokens["refresh_token"])
    assert "503" in raised.value.message and answered(raised.value)[0] == 502


def test_a_token_answer_without_a_refresh_token_says_which_scope_to_allow(sf, client):
    answers_next(sf, "token", 200, {"access_token": "a", "id": "i", "instance_url": sf.url})
    assert caught(SalesforceError, client.exchange_code, "code", REDIRECT_URI, "verifier").message == (
        "Salesforce gave no refresh token: allow the refresh_token scope in the connected app's OAuth policies")


def test_a_token_answer_without_an_access_token_is_refused_in_these_words(sf, client):
    answers_next(sf, "token", 200, {"id": "i", "instance_url": sf.url})
    assert caught(SalesforceError, client.refresh, "refresh-token").message == \
        "Salesforce's token answer lacks access_token, id or instance_url"


def test_a_300_from_the_token_endpoint_is_an_error_naming_status_and_error(sf, client):
    """A 300 is not taken for tokens, and its words name the status and Salesforce's error."""
    answers_next(sf, "token", 300, {"error": "odd_error", "error_description": "odd words",
                                     "access_token": "a", "id": "i", "instance_url": sf.url})
    assert caught(SalesforceError, client.refresh, "refresh-token").message == \
        "Salesforce's token endpoint answered 300 odd_error: odd words"


def test_a_token_error_without_error_fields_says_error(sf, client):
    answers_next(sf, "token", 400, {})
    assert caught(SalesforceError, client.refresh, "refresh-token").message == \
        "Salesforce's token endpoint answered 400 error: "


def test_other_token_endpoint_errors_name_salesforces_error(client, sf, tokens):
    sf.fail_next("token", status=400, body=b'{"error":"unsupported_grant_type","error_description":"nope"}')
    with pytest.raises(SalesforceError) as raised:
        client.refresh(tokens["refresh_token"])
    assert "unsupported_grant_type" in raised.value.message and "nope" in raised.value.message


@pytest.mark.parametrize("description,said", [("expired access/refresh token", "expired access/refresh token"),
                                              (None, "invalid_grant")])
def test_a_refused_refresh_says_why_and_what_to_do(sf, client, description, said):
    answers_next(sf, "token", 400, {"error": "invalid_grant", "error_description": description} if description
                  else {"error": "invalid_grant"})
    assert caught(InvalidGrant, client.refresh, "refresh-token").message == \
        f"Salesforce no longer accepts this agent's link ({said}): connect Salesforce again"


def test_a_refused_code_says_what_to_do(sf, client):
    answers_next(sf, "token", 400, {"error": "invalid_grant", "error_description": "expired authorization code"})
    refused = caught(CodeRefused, client.exchange_code, "code", REDIRECT_URI, "verifier")
    assert (answered(refused)[1], refused.message) == (
        "invalid_code", "Salesforce refused the authorization code (used or expired): connect Salesforce again")


@pytest.mark.parametrize("error", ["invalid_client", "invalid_client_id", "invalid_client_credentials"])
def test_refused_app_credentials_name_the_settings_in_the_log_only(sf, client, error, caplog):
    """Which settings to check is for the operator: a client is told only that the server is at fault."""
    answers_next(sf, "token", 400, {"error": error, "error_description": "client secret invalid"})
    assert caught(SalesforceError, client.refresh, "refresh-token").message == \
        "Salesforce refused this server's own app credentials"
    assert caplog.messages == [f"Salesforce's token endpoint answered {error}: check SFDC_CLIENT_ID "
                               "and SFDC_CLIENT_SECRET"]


def test_a_redirect_uri_mismatch_names_the_callback_in_the_log_only(sf, client, caplog):
    answers_next(sf, "token", 400, {"error": "redirect_uri_mismatch", "error_description": "redirect_uri must match"})
    assert caught(SalesforceError, client.exchange_code, "code", REDIRECT_URI, "verifier").message == \
        "Salesforce refused this server's redirect URI"
    assert caplog.messages == ["Salesforce's token endpoint answered redirect_uri_mismatch: the connected "
                               "app's callback URL must be PUBLIC_URL's /oauth-callback"]


def test_revoke_kills_the_refresh_token_and_revoking_again_is_fine(client, tokens):
    client.revoke(tokens["refresh_token"])
    client.revoke(tokens["refresh_token"])
    with pytest.raises(InvalidGrant):
        client.refresh(tokens["refresh_token"])


def test_revoke_during_an_outage_is_a_salesforce_error(client, sf, tokens):
    sf.fail_next("revoke", status=503)
    with pytest.raises(SalesforceError):
        client.revoke(tokens["refresh_token"])


def test_a_revoke_answered_401_is_an_error_naming_the_status(sf, client):
    """Not only a 5xx is a failed revoke."""
    sf.fail_next("revoke", status=401)
    assert caught(SalesforceError, client.revoke, "refresh-token").message == \
        "Salesforce could not revoke the token: it answered 401"


def test_userinfo_with_an_expired_token_is_session_expired(client, sf, tokens):
    info = client.userinfo(tokens["access_token"])
    assert info["organization_id"].startswith("00D5e000000AbCd")
    sf.expire_access_tokens()
    with pytest.raises(SessionExpired):
        client.userinfo(tokens["access_token"])


def test_an_expired_userinfo_token_is_said_in_these_words(client):
    assert caught(SessionExpired, client.userinfo, "not-a-live-token").message == "The Salesforce session expired"


def test_userinfo_outage_is_a_salesforce_error_not_an_expiry(client, sf, tokens):
    sf.fail_next("userinfo", status=503)
    with pytest.raises(SalesforceError) as raised:
        client.userinfo(tokens["access_token"])
    assert not isinstance(raised.value, SessionExpired) and "503" in raised.value.message


def test_a_userinfo_403_without_bad_oauth_token_is_not_an_expiry(sf, client, token):
    """Not every 403 is an expired session."""
    answers_next(sf, "userinfo", 403, rest_error("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."))
    assert caught(RequestLimitExceeded, client.userinfo, token).message == \
        "Salesforce refused the call: the org's daily API request limit is exceeded"


def test_a_userinfo_300_is_an_error(sf, client, token):
    """A 300 is not read as the user."""
    answers_next(sf, "userinfo", 300, rest_error("MULTIPLE_CHOICES", "pick one"))
    assert caught(SalesforceError, client.userinfo, token).message == "Salesforce answered 300 MULTIPLE_CHOICES: pick one"
