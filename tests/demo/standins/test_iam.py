"""The Twilio IAM stand-in over real HTTP: Tokens/validate, credentials, demo sign-in, faults, and
the edge paths: methods Tokens/validate and the demo endpoints do not take (405 / 20004, with
CORS headers on the demo ones), CORS preflight, and a body that is not JSON (400 / 20001)."""
from __future__ import annotations

import base64
import datetime
import http.client
import json
import urllib.parse

import pytest

from sfdcflex.demo.standins import IamStandIn
from sfdcflex.demo.standins.iam import flex_identity

ACCOUNT_SID = "AC" + "a1" * 16
AUTH_TOKEN = "b2" * 16
VALIDATE = f"/v1/Accounts/{ACCOUNT_SID}/Tokens/validate"


def call(url: str, method: str = "POST", *, payload: object = None,
         headers: dict | None = None) -> tuple[int, dict, bytes]:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    body = json.dumps(payload) if payload is not None else None
    sent = {"Content-Type": "application/json", **(headers or {})}
    try:
        connection.request(method, parts.path, body, sent)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def validate(iam: IamStandIn, token: str, *, credentials: tuple[str, str] = (ACCOUNT_SID, AUTH_TOKEN),
             account_sid: str = ACCOUNT_SID) -> tuple[int, dict]:
    url = f"{iam.url}/v1/Accounts/{account_sid}/Tokens/validate"
    status, _, body = call(url, payload={"token": token}, headers=basic(*credentials))
    return status, json.loads(body)


@pytest.fixture()
def iam():
    with IamStandIn(ACCOUNT_SID, AUTH_TOKEN) as server:
        yield server


def test_a_valid_token_answers_the_agent_identity(iam):
    token = iam.issue_token("alice@sfdcflex.demo", ttl=600, roles=("agent", "supervisor"))
    status, body = validate(iam, token)
    assert status == 200
    assert body["valid"] is True and body["code"] == 0 and body["message"] is None
    assert body["realm_user_id"] == "alice@sfdcflex.demo"
    assert body["identity"] == "alice_40sfdcflex_2Edemo"
    assert body["roles"] == ["agent", "supervisor"] and body["worker_sid"].startswith("WK")
    expiration = datetime.datetime.strptime(body["expiration"], "%Y-%m-%dT%H:%M:%S.%fZ")
    remaining = expiration.replace(tzinfo=datetime.timezone.utc) - datetime.datetime.now(
        datetime.timezone.utc)
    assert 590 < remaining.total_seconds() <= 600
    assert iam.calls["validate"] == 1


def test_unknown_revoked_and_expired_tokens_are_valid_false(iam):
    assert validate(iam, "not-a-token") == (200, {
        "valid": False, "code": 20101, "message": "Invalid Access Token", "expiration": None,
        "realm_user_id": None, "identity": None, "roles": None, "worker_sid": None})
    revoked = iam.issue_token("bob@sfdcflex.demo")
    iam.revoke_token(revoked)
    assert validate(iam, revoked)[1]["valid"] is False
    expired = iam.issue_token("bob@sfdcflex.demo", ttl=0)
    status, body = validate(iam, expired)
    assert (status, body["valid"], body["code"]) == (200, False, 20104)


def test_wrong_credentials_get_twilio_20003(iam):
    token = iam.issue_token("alice@sfdcflex.demo")
    status, body = validate(iam, token, credentials=(ACCOUNT_SID, "wrong"))
    assert (status, body) == (401, {"code": 20003, "message": "Authenticate",
                                    "more_info": "https://www.twilio.com/docs/errors/20003",
                                    "status": 401})
    assert validate(iam, token, credentials=("AC" + "0" * 32, AUTH_TOKEN))[0] == 401


def test_another_accounts_path_is_not_found(iam):
    token = iam.issue_token("alice@sfdcflex.demo")
    status, body = validate(iam, token, account_sid="AC" + "9" * 32)
    assert (status, body["code"]) == (404, 20404)


def test_a_body_without_token_is_a_400(iam):
    url = f"{iam.url}/v1/Accounts/{ACCOUNT_SID}/Tokens/validate"
    status, _, body = call(url, payload={"nope": 1}, headers=basic(ACCOUNT_SID, AUTH_TOKEN))
    assert status == 400 and json.loads(body)["code"] == 20001


def test_flex_identity_encodes_like_flex():
    assert flex_identity("ada.lovelace+ops@example.com") == "ada_2Elovelace_2Bops_40example_2Ecom"


def test_demo_agents_and_demo_tokens_allow_any_origin(iam):
    iam.add_agent("alice@sfdcflex.demo", "Alice Johnson")
    status, headers, body = call(iam.url + "/demo/agents", "GET")
    assert status == 200 and headers["access-control-allow-origin"] == "*"
    assert json.loads(body) == {"agents": [{"realm_user_id": "alice@sfdcflex.demo",
                                            "name": "Alice Johnson"}]}
    status, headers, _ = call(iam.url + "/demo/token", "OPTIONS",
                              headers={"Origin": "http://127.0.0.1:1",
                                       "Access-Control-Request-Method": "POST"})
    assert status == 204 and "POST" in headers["access-control-allow-methods"]
    status, headers, body = call(iam.url + "/demo/token",
                                 payload={"realm_user_id": "alice@sfdcflex.demo"})
    issued = json.loads(body)
    assert status == 200 and headers["access-control-allow-origin"] == "*"
    assert validate(iam, issued["token"])[1]["realm_user_id"] == "alice@sfdcflex.demo"
    assert issued["expiration"].endswith("Z")


def test_demo_token_for_an_unknown_agent_is_404(iam):
    status, _, body = call(iam.url + "/demo/token", payload={"realm_user_id": "eve@x"})
    assert status == 404 and json.loads(body)["code"] == 20404


def test_unknown_paths_get_the_twilio_404(iam):
    status, _, body = call(iam.url + "/v2/Whatever", "GET")
    assert status == 404 and json.loads(body)["status"] == 404


@pytest.mark.parametrize("status", [429, 500, 503])
def test_injected_statuses_use_twilio_error_bodies(iam, status):
    iam.fail_next("validate", status=status)
    answer_status, body = validate(iam, iam.issue_token("alice@sfdcflex.demo"))
    assert answer_status == status and body["status"] == status and body["code"] >= 20000
    assert validate(iam, iam.issue_token("alice@sfdcflex.demo"))[1]["valid"] is True


def test_injected_reset_gives_no_answer(iam):
    iam.fail_next("validate", reset=True)
    with pytest.raises(ConnectionError):
        validate(iam, "x")


# -- edge paths ---------------------------------------------------------------------------------

def test_validate_takes_post_only(iam):
    status, _, body = call(iam.url + VALIDATE, "GET", headers=basic(ACCOUNT_SID, AUTH_TOKEN))
    assert status == 405
    assert json.loads(body) == {"code": 20004, "message": "Method not allowed", "status": 405,
                                "more_info": "https://www.twilio.com/docs/errors/20004"}


@pytest.mark.parametrize("raw", [b"not json", b"{\"token\": ", b"\xff"])
def test_a_validate_body_that_is_not_json_is_400_20001(iam, raw):
    parts = urllib.parse.urlsplit(iam.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        connection.request("POST", VALIDATE, raw, {"Content-Type": "application/json",
                                                    **basic(ACCOUNT_SID, AUTH_TOKEN)})
        reply = connection.getresponse()
        status, body = reply.status, json.loads(reply.read())
    finally:
        connection.close()
    assert (status, body["code"], body["status"]) == (400, 20001, 400)


def test_demo_agents_answers_a_cors_preflight(iam):
    status, headers, body = call(iam.url + "/demo/agents", "OPTIONS",
                                 headers={"Origin": "http://127.0.0.1:1",
                                          "Access-Control-Request-Method": "GET"})
    assert (status, body) == (204, b"")
    assert headers["access-control-allow-origin"] == "*"
    assert "GET" in headers["access-control-allow-methods"]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_demo_token_takes_post_only_and_says_so_to_any_origin(iam, method):
    status, headers, body = call(iam.url + "/demo/token", method)
    assert status == 405 and json.loads(body)["code"] == 20004
    assert headers["access-control-allow-origin"] == "*"
