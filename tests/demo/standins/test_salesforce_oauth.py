"""The Salesforce stand-in's OAuth over real HTTP: the login page, authorize with PKCE, the code
exchange, refresh rotation, revoke and userinfo (fixtures in conftest.py)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from sfdcflex.demo.standins import SalesforceStandIn, submit_consent
from tests.support.standins import (REDIRECT, VERIFIER, authorize_url, call, challenge, query_of, refresh,
                                    rest)


def exchange(sf: SalesforceStandIn, code: str, **overrides: str) -> tuple[int, dict]:
    form = {"grant_type": "authorization_code", "code": code, "client_id": sf.client_id,
            "client_secret": sf.client_secret, "redirect_uri": REDIRECT,
            "code_verifier": VERIFIER, **overrides}
    status, _, body = call(sf.url + "/services/oauth2/token", "POST", form=form)
    return status, json.loads(body)


# -- authorize and the login page ------------------------------------------------------------

def test_login_page_lists_users_and_carries_the_oauth_parameters(sf):
    status, headers, body = call(authorize_url(sf))
    page = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "alice@sfdcflex.demo" in page and "Allow" in page and "Deny" in page
    assert f'name="code_challenge" value="{challenge()}"' in page
    assert "src=" not in page and "<link" not in page  # self-contained: no external resources


def test_authorize_refuses_an_unknown_client_with_an_error_page(sf):
    status, headers, body = call(authorize_url(sf, client_id="nope"))
    assert status == 400 and headers["content-type"].startswith("text/html")
    assert "error=invalid_client_id" in body.decode()


def test_authorize_without_code_challenge_redirects_with_invalid_request(sf):
    status, headers, _ = call(authorize_url(sf, code_challenge=None))
    assert status == 302
    assert query_of(headers["location"])["error"] == "invalid_request"


def test_allow_then_exchange_with_pkce_returns_a_salesforce_token_response(sf):
    location = submit_consent(authorize_url(sf), "alice@sfdcflex.demo")
    assert location.startswith(REDIRECT + "&")
    answer = query_of(location)
    assert answer["state"] == "st-123"
    status, token = exchange(sf, answer["code"])
    assert status == 200
    user_id = token["id"].rsplit("/", 1)[1]
    assert token["id"] == f"{sf.url}/id/{sf.org_id}/{user_id}" and user_id.startswith("005")
    assert token["instance_url"] == sf.url and token["token_type"] == "Bearer"
    assert token["scope"] == "api refresh_token" and token["refresh_token"]
    mac = hmac.new(sf.client_secret.encode(), (token["id"] + token["issued_at"]).encode(),
                   hashlib.sha256)
    assert base64.b64decode(token["signature"]) == mac.digest()


def test_wrong_verifier_is_refused_and_spends_the_code(sf):
    code = query_of(submit_consent(authorize_url(sf), "alice@sfdcflex.demo"))["code"]
    status, body = exchange(sf, code, code_verifier="x" * 43)
    assert (status, body["error"]) == (400, "invalid_grant")
    assert exchange(sf, code)[0] == 400


def test_a_code_works_once(sf):
    code = query_of(submit_consent(authorize_url(sf), "alice@sfdcflex.demo"))["code"]
    assert exchange(sf, code)[0] == 200
    status, body = exchange(sf, code)
    assert (status, body["error"]) == (400, "invalid_grant")


def test_redirect_uri_must_equal_the_authorized_one(sf):
    code = query_of(submit_consent(authorize_url(sf), "alice@sfdcflex.demo"))["code"]
    status, body = exchange(sf, code, redirect_uri="http://127.0.0.1:9/elsewhere")
    assert (status, body) == (400, {"error": "invalid_grant",
                                    "error_description": "authentication failure"})


def test_an_expired_code_is_refused(sf):
    sf.grants.code_ttl = -1
    code = query_of(submit_consent(authorize_url(sf), "alice@sfdcflex.demo"))["code"]
    assert exchange(sf, code)[1]["error"] == "invalid_grant"


def test_client_credentials_are_checked(sf):
    code = query_of(submit_consent(authorize_url(sf), "alice@sfdcflex.demo"))["code"]
    assert exchange(sf, code, client_secret="wrong") == (
        401, {"error": "invalid_client", "error_description": "invalid client credentials"})
    assert exchange(sf, code, client_id="other")[1]["error"] == "invalid_client_id"


def test_deny_redirects_with_access_denied(sf):
    location = submit_consent(authorize_url(sf), "alice@sfdcflex.demo", allow=False)
    assert location.endswith("error=access_denied"
                             "&error_description=end-user+denied+authorization&state=st-123")


def test_an_unknown_user_gets_the_page_again_with_a_message(sf):
    with pytest.raises(RuntimeError, match="200"):
        submit_consent(authorize_url(sf), "nobody@sfdcflex.demo")
    form = {**query_of(authorize_url(sf)), "username": "nobody@x", "decision": "allow"}
    status, _, body = call(sf.url + "/services/oauth2/authorize", "POST", form=form)
    assert status == 200 and "check your username" in body.decode()


# -- refresh rotation, revoke, userinfo ------------------------------------------------------

def test_refresh_rotates_and_reuse_revokes_the_whole_chain(seeded):
    sf, _ = seeded
    first = sf.issue_tokens("alice@sfdcflex.demo")
    status, second = refresh(sf, first["refresh_token"])
    assert status == 200
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    status, third = refresh(sf, second["refresh_token"])
    assert status == 200
    assert rest(sf, "query", "SELECT Id FROM User", third["access_token"])[0] == 200

    status, body = refresh(sf, first["refresh_token"])  # replay of a rotated-out token
    assert (status, body) == (400, {"error": "invalid_grant",
                                    "error_description": "expired access/refresh token"})
    assert refresh(sf, third["refresh_token"])[0] == 400
    assert rest(sf, "query", "SELECT Id FROM User", third["access_token"])[0] == 401
    assert sf.refresh_log == [first["refresh_token"], second["refresh_token"],
                              first["refresh_token"], third["refresh_token"]]


def test_revoking_a_refresh_token_kills_its_access_tokens(seeded):
    sf, _ = seeded
    tokens = sf.issue_tokens("alice@sfdcflex.demo")
    status, _, _ = call(sf.url + "/services/oauth2/revoke", "POST",
                        form={"token": tokens["refresh_token"]})
    assert status == 200
    assert rest(sf, "query", "SELECT Id FROM User", tokens["access_token"])[0] == 401
    assert refresh(sf, tokens["refresh_token"])[1]["error"] == "invalid_grant"


def test_revoking_an_access_token_keeps_the_refresh_token(seeded):
    sf, _ = seeded
    tokens = sf.issue_tokens("alice@sfdcflex.demo")
    assert call(sf.url + "/services/oauth2/revoke", "POST",
                form={"token": tokens["access_token"]})[0] == 200
    assert rest(sf, "query", "SELECT Id FROM User", tokens["access_token"])[0] == 401
    assert refresh(sf, tokens["refresh_token"])[0] == 200


def test_revoking_an_unknown_token_is_a_400(sf):
    status, _, body = call(sf.url + "/services/oauth2/revoke", "POST", form={"token": "nope"})
    assert (status, json.loads(body)) == (400, {"error": "unsupported_token_type",
                                                "error_description": "this token type is not supported"})


def test_userinfo_answers_the_user_and_refuses_a_bad_token_like_salesforce(sf):
    token = sf.issue_tokens("mallory@other.org")["access_token"]
    status, _, body = call(sf.url + "/services/oauth2/userinfo",
                           headers={"Authorization": f"Bearer {token}"})
    info = json.loads(body)
    assert status == 200
    assert info["preferred_username"] == "mallory@other.org"
    assert info["organization_id"] == "00D5e000000ZzZzEAA" and info["user_id"].startswith("005")
    assert info["name"] == "Mallory Other" and info["email"] == "mallory@other.org"
    sf.expire_access_tokens()
    status, headers, body = call(sf.url + "/services/oauth2/userinfo",
                                 headers={"Authorization": f"Bearer {token}"})
    assert (status, body) == (403, b"Bad_OAuth_Token")
    assert headers["content-type"].startswith("text/plain")
