"""The Salesforce stand-in's OAuth and Identity URL refusals over real HTTP, each answered as
Salesforce does: OAuth errors are {"error", "error_description"} or a redirect back with `error=`;
the Identity URL answers plain-text codes (403 Missing_OAuth_Token, Bad_OAuth_Token, Wrong_Org; 404
Bad_Id). (The OAuth flow itself: test_salesforce_oauth.py.)
"""
from __future__ import annotations

import base64
import json
import urllib.parse

import pytest

from sfdcflex.demo.standins import SalesforceStandIn

from tests.support.standins import OTHER_ORG, REDIRECT, VERIFIER, bearer, call, challenge, query_of, shared_standin


@pytest.fixture(scope="module")
def sf():
    """One stand-in serves the whole module (tests/support/standins.py: shared_standin)."""
    with shared_standin() as server:
        yield server


def identity(sf: SalesforceStandIn, org_id: str, user_id: str, headers: dict) -> tuple[int, bytes]:
    status, reply_headers, body = call(f"{sf.url}/id/{org_id}/{user_id}", headers=headers)
    if status != 200:
        assert reply_headers["content-type"].startswith("text/plain")
    return status, body


def test_the_identity_url_answers_the_user_and_whether_the_token_is_theirs(sf):
    status, body = identity(sf, sf.org_id, sf.alice, bearer(sf.token))
    own = json.loads(body)
    assert status == 200 and own["asserted_user"] is True
    assert (own["user_id"], own["organization_id"], own["username"]) == (
        sf.alice, sf.org_id, "alice@sfdcflex.demo")
    assert own["id"] == f"{sf.url}/id/{sf.org_id}/{sf.alice}"
    # Another user of the same org, asked by its 15-character ids, is not the token's user.
    status, body = identity(sf, sf.org_id[:15], sf.bob[:15], bearer(sf.token))
    assert status == 200 and json.loads(body)["asserted_user"] is False
    assert json.loads(body)["username"] == "bob@sfdcflex.demo"


@pytest.mark.parametrize("case, expected", [
    ("no token", (403, b"Missing_OAuth_Token")),
    ("bad token", (403, b"Bad_OAuth_Token")),
    ("unknown user", (404, b"Bad_Id")),
    ("org of the path is not the user's", (404, b"Bad_Id")),
    ("user of another org", (403, b"Wrong_Org")),
])
def test_the_identity_url_refuses_with_salesforces_codes(sf, case, expected):
    org_id, user_id, headers = {
        "no token": (sf.org_id, sf.alice, {}),
        "bad token": (sf.org_id, sf.alice, bearer("00Dbogus!token")),
        "unknown user": (sf.org_id, "005" + "0" * 15, bearer(sf.token)),
        "org of the path is not the user's": (OTHER_ORG, sf.alice, bearer(sf.token)),
        "user of another org": (OTHER_ORG, sf.mallory, bearer(sf.token)),
    }[case]
    assert identity(sf, org_id, user_id, headers) == expected


def authorize_params(sf: SalesforceStandIn, **overrides: str | None) -> dict[str, str]:
    params = {"response_type": "code", "client_id": sf.client_id, "redirect_uri": REDIRECT,
              "state": "st-9", "scope": "api refresh_token", "code_challenge": challenge(),
              "code_challenge_method": "S256", **overrides}
    return {name: value for name, value in params.items() if value is not None}


def authorize(sf: SalesforceStandIn, **overrides: str | None) -> tuple[int, dict, bytes]:
    query = urllib.parse.urlencode(authorize_params(sf, **overrides))
    return call(f"{sf.url}/services/oauth2/authorize?{query}")


def allow(sf: SalesforceStandIn, username: str, **overrides: str | None) -> tuple[int, dict, bytes]:
    form = {**authorize_params(sf, **overrides), "decision": "allow", "username": username}
    return call(f"{sf.url}/services/oauth2/authorize", "POST", form=form)


def test_allow_without_a_chosen_user_shows_the_login_page_again(sf):
    status, headers, body = allow(sf, "")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "Choose a Salesforce user to log in as." in body.decode()
    assert "location" not in headers and "set-cookie" not in headers


@pytest.mark.parametrize("redirect_uri", ["javascript:alert(1)", "", "ftp://127.0.0.1/cb"])
def test_a_redirect_uri_that_is_not_http_gets_an_error_page_not_a_redirect(sf, redirect_uri):
    status, headers, body = authorize(sf, redirect_uri=redirect_uri)
    assert status == 400 and headers["content-type"].startswith("text/html")
    assert "location" not in headers
    assert "error=redirect_uri_mismatch" in body.decode()


@pytest.mark.parametrize("overrides, error, description", [
    ({"response_type": "token"}, "unsupported_response_type", "response type not supported"),
    ({"code_challenge_method": "plain"}, "invalid_request", "invalid code challenge method"),
])
def test_bad_authorize_parameters_redirect_back_with_the_oauth_error(sf, overrides, error, description):
    status, headers, _ = authorize(sf, **overrides)
    assert status == 302 and headers["location"].startswith(REDIRECT + "&")
    assert query_of(headers["location"]) == {"from": "test", "error": error,
                                             "error_description": description, "state": "st-9"}


def code_for(sf: SalesforceStandIn, scope: str = "api refresh_token") -> str:
    status, headers, _ = allow(sf, "alice@sfdcflex.demo", scope=scope)
    assert status == 302
    return query_of(headers["location"])["code"]


def token_call(sf: SalesforceStandIn, form: dict, headers: dict | None = None) -> tuple[int, dict, dict]:
    status, reply_headers, body = call(sf.url + "/services/oauth2/token", "POST", form=form,
                                       headers=headers)
    return status, reply_headers, json.loads(body)


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_the_token_endpoint_wants_post(sf):
    status, headers, body = call(sf.url + "/services/oauth2/token?grant_type=refresh_token")
    assert status == 400 and headers["cache-control"].startswith("no-cache")
    assert json.loads(body) == {"error": "invalid_request", "error_description": "must use HTTP POST"}


def test_an_unknown_grant_type_is_unsupported_grant_type(sf):
    status, _, body = token_call(sf, {"grant_type": "urn:example:magic", "client_id": sf.client_id,
                                      "client_secret": sf.client_secret})
    assert (status, body) == (400, {"error": "unsupported_grant_type",
                                    "error_description": "grant type not supported"})


def test_client_credentials_may_come_in_a_basic_authorization_header(sf):
    form = {"grant_type": "authorization_code", "code": code_for(sf), "redirect_uri": REDIRECT,
            "code_verifier": VERIFIER}
    status, _, body = token_call(sf, form, basic(sf.client_id, sf.client_secret))
    assert status == 200 and body["access_token"] and body["refresh_token"]
    form["code"] = code_for(sf)
    status, _, body = token_call(sf, form, basic(sf.client_id, "wrong-secret"))
    assert (status, body["error"]) == (401, "invalid_client")


@pytest.mark.parametrize("authorization", ["Basic !!!not-base64", "Basic " + base64.b64encode(
    b"\xff\xfe:\xff").decode(), "Basic " + base64.b64encode(b"no-colon").decode()])
def test_an_unreadable_basic_header_is_an_invalid_client_id(sf, authorization):
    status, _, body = token_call(sf, {"grant_type": "refresh_token", "refresh_token": "x"},
                                 {"Authorization": authorization})
    assert (status, body) == (400, {"error": "invalid_client_id",
                                    "error_description": "client identifier invalid"})


def test_a_grant_without_refresh_scope_gets_no_refresh_token(sf):
    form = {"grant_type": "authorization_code", "code": code_for(sf, scope="api"),
            "client_id": sf.client_id, "client_secret": sf.client_secret,
            "redirect_uri": REDIRECT, "code_verifier": VERIFIER}
    status, _, body = token_call(sf, form)
    assert status == 200 and body["access_token"] and body["scope"] == "api"
    assert "refresh_token" not in body


def test_issue_tokens_for_an_unknown_user_raises_key_error(sf):
    with pytest.raises(KeyError):
        sf.issue_tokens("nobody@sfdcflex.demo")
