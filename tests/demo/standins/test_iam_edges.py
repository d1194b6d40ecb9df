"""The IAM stand-in's edge paths over real HTTP: methods Tokens/validate and the demo endpoints do
not take (405 / 20004, with CORS headers on the demo ones), CORS preflight, and a body that is
not JSON (400 / 20001). One stand-in serves the whole module."""
from __future__ import annotations

import json

import pytest

from sfdcflex.demo.standins import IamStandIn

from tests.demo.standins.test_iam import ACCOUNT_SID, AUTH_TOKEN, basic, call

VALIDATE = f"/v1/Accounts/{ACCOUNT_SID}/Tokens/validate"


@pytest.fixture(scope="module")
def iam():
    with IamStandIn(ACCOUNT_SID, AUTH_TOKEN) as server:
        server.add_agent("alice@sfdcflex.demo", "Alice Johnson")
        yield server


def test_validate_takes_post_only(iam):
    status, _, body = call(iam.url + VALIDATE, "GET", headers=basic(ACCOUNT_SID, AUTH_TOKEN))
    assert status == 405
    assert json.loads(body) == {"code": 20004, "message": "Method not allowed", "status": 405,
                                "more_info": "https://www.twilio.com/docs/errors/20004"}


@pytest.mark.parametrize("raw", [b"not json", b"{\"token\": ", b"\xff"])
def test_a_validate_body_that_is_not_json_is_400_20001(iam, raw):
    import http.client
    import urllib.parse
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
