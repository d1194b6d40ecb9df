"""The Salesforce stand-in over real HTTP: OAuth with PKCE and rotation, REST, faults, demo data."""
from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import threading
import time
import urllib.parse

import pytest

from sfdcflex.demo.standins import IamStandIn, SalesforceStandIn, submit_consent
from sfdcflex.demo.standins.demo_data import seed_demo
from sfdcflex.demo.standins.sobjects import id18
from tests.support.standins import API, REDIRECT, VERIFIER, authorize_url, call, challenge, query_of


def exchange(sf: SalesforceStandIn, code: str, **overrides: str) -> tuple[int, dict]:
    form = {"grant_type": "authorization_code", "code": code, "client_id": sf.client_id,
            "client_secret": sf.client_secret, "redirect_uri": REDIRECT,
            "code_verifier": VERIFIER, **overrides}
    status, _, body = call(sf.url + "/services/oauth2/token", "POST", form=form)
    return status, json.loads(body)


def refresh(sf: SalesforceStandIn, refresh_token: str) -> tuple[int, dict]:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token,
            "client_id": sf.client_id, "client_secret": sf.client_secret}
    status, _, body = call(sf.url + "/services/oauth2/token", "POST", form=form)
    return status, json.loads(body)


def rest(sf: SalesforceStandIn, kind: str, text: str, token: str) -> tuple[int, object]:
    url = f"{sf.url}{API}/{kind}?{urllib.parse.urlencode({'q': text})}"
    status, _, body = call(url, headers={"Authorization": f"Bearer {token}"})
    return status, json.loads(body)


@pytest.fixture()
def sf():
    with SalesforceStandIn() as server:
        server.add_user("alice@sfdcflex.demo", "Alice Johnson")
        server.add_user("mallory@other.org", "Mallory Other", org_id="00D5e000000ZzZzEAA")
        yield server


@pytest.fixture()
def crm(sf):
    """sf with accounts and contacts, plus a live access token."""
    acme = sf.add_account("Acme", type="Customer - Direct", account_number="CD1", sla="Gold",
                          priority="High")
    sf.add_contact("Jane Cooper", account_id=acme, title="VP", phone="(415) 555-0101")
    sf.add_contact("Sam O'Brien", account_id=acme, phone="415.555.0102")
    sf.add_contact("Lone Wolf", mobile_phone="+44 20 7946 0958")
    sf.add_contact("Riley Park", account_id=acme, phone="(415) 555-0109", indexed=False)
    return sf, sf.issue_tokens("alice@sfdcflex.demo")["access_token"]


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

def test_refresh_rotates_and_reuse_revokes_the_whole_chain(crm):
    sf, _ = crm
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


def test_revoking_a_refresh_token_kills_its_access_tokens(crm):
    sf, _ = crm
    tokens = sf.issue_tokens("alice@sfdcflex.demo")
    status, _, _ = call(sf.url + "/services/oauth2/revoke", "POST",
                        form={"token": tokens["refresh_token"]})
    assert status == 200
    assert rest(sf, "query", "SELECT Id FROM User", tokens["access_token"])[0] == 401
    assert refresh(sf, tokens["refresh_token"])[1]["error"] == "invalid_grant"


def test_revoking_an_access_token_keeps_the_refresh_token(crm):
    sf, _ = crm
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


# -- REST query -----------------------------------------------------------------------------

def test_query_with_in_or_order_by_limit_and_nested_relationships(crm):
    sf, token = crm
    status, body = rest(sf, "query",
                        "select Id, Name, account.name, Account.SLA__c from contact "
                        "where Phone in ('(415) 555-0101', '415.555.0102') "
                        "or MobilePhone = '+44 20 7946 0958' order by Name desc limit 2", token)
    assert status == 200 and body["done"] is True and body["totalSize"] == 2
    first, second = body["records"]
    assert [first["Name"], second["Name"]] == ["Sam O'Brien", "Lone Wolf"]
    assert first["attributes"] == {"type": "Contact",
                                   "url": f"{API}/sobjects/Contact/{first['Id']}"}
    assert first["Account"]["Name"] == "Acme" and first["Account"]["SLA__c"] == "Gold"
    assert first["Account"]["attributes"]["type"] == "Account"
    assert second["Account"] is None


def test_query_phone_equality_is_exact_and_finds_unindexed_records(crm):
    sf, token = crm
    found = rest(sf, "query", "SELECT Name FROM Contact WHERE Phone = '(415) 555-0109'", token)[1]
    assert [r["Name"] for r in found["records"]] == ["Riley Park"]
    other = rest(sf, "query", "SELECT Name FROM Contact WHERE Phone = '4155550109'", token)[1]
    assert other["totalSize"] == 0


def test_query_string_escapes_are_decoded(crm):
    sf, token = crm
    body = rest(sf, "query", r"SELECT Name FROM Contact WHERE Name = 'Sam O\'Brien'", token)[1]
    assert [r["Name"] for r in body["records"]] == ["Sam O'Brien"]
    backslash = rest(sf, "query", r"SELECT Name FROM Contact WHERE Name = 'a\\b\n'", token)
    assert backslash == (200, {"totalSize": 0, "done": True, "records": []})


@pytest.mark.parametrize("text", [
    "SELECT Id FROM Contact WHERE Name = 'x' AND Title = 'y' OR Phone = 'z'",
    "SELECT Id FROM Contact WHERE Name = 'unterminated",
    r"SELECT Id FROM Contact WHERE Name = 'bad \q escape'",
    "SELECT Id FROM Contact WHERE Phone = 4155550101",
    "SELECT Id FROM Contact WHERE Name = 'x'; DELETE",
    "SELECT FROM Contact",
    "",
])
def test_malformed_queries_get_salesforce_error_bodies(crm, text):
    sf, token = crm
    status, body = rest(sf, "query", text, token)
    assert status == 400 and body[0]["errorCode"] == "MALFORMED_QUERY" and body[0]["message"]


def test_unknown_field_is_invalid_field(crm):
    sf, token = crm
    status, body = rest(sf, "query", "SELECT Nickname__c FROM Contact", token)
    assert status == 400 and body[0]["errorCode"] == "INVALID_FIELD"


def test_users_can_be_queried(crm):
    sf, token = crm
    body = rest(sf, "query", "SELECT Id, Username FROM User WHERE Username = 'ALICE@sfdcflex.demo'",
                token)[1]
    assert [r["Username"] for r in body["records"]] == ["alice@sfdcflex.demo"]


# -- REST search ----------------------------------------------------------------------------

def sosl(term: str) -> str:
    return (f"FIND {{{term}}} IN PHONE FIELDS RETURNING Contact(Id, Name, Account.Name "
            "ORDER BY LastModifiedDate DESC LIMIT 10)")


def test_search_matches_phone_digits_across_formats(crm):
    sf, token = crm
    for term, name in [("4155550101", "Jane Cooper"), ("14155550102", "Sam O'Brien"),
                       ("02079460958", None), ("442079460958", "Lone Wolf")]:
        status, body = rest(sf, "search", sosl(term), token)
        assert status == 200
        names = [r["Name"] for r in body["searchRecords"]]
        assert names == ([name] if name else []), term


def test_search_does_not_find_unindexed_contacts(crm):
    sf, token = crm
    assert rest(sf, "search", sosl("4155550109"), token) == (200, {"searchRecords": []})


def test_search_needs_seven_common_digits(crm):
    sf, token = crm
    assert rest(sf, "search", sosl("550101"), token)[1]["searchRecords"] == []


def test_search_refuses_unescaped_reserved_characters(crm):
    sf, token = crm
    status, body = rest(sf, "search", sosl("+14155550101"), token)
    assert status == 400 and body[0]["errorCode"] == "MALFORMED_SEARCH"
    status, body = rest(sf, "search", sosl(r"\+14155550101"), token)
    assert status == 200 and body["searchRecords"][0]["Name"] == "Jane Cooper"


# -- REST errors ----------------------------------------------------------------------------

def test_expired_access_tokens_get_invalid_session_id(crm):
    sf, token = crm
    sf.expire_access_tokens()
    assert rest(sf, "query", "SELECT Id FROM Contact", token) == (
        401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    assert rest(sf, "search", sosl("4155550101"), "garbage")[0] == 401


def test_request_limit_switch(crm):
    sf, token = crm
    sf.request_limit_exceeded = True
    assert rest(sf, "query", "SELECT Id FROM Contact", token) == (
        403, [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])


def test_wrong_api_version_and_unknown_paths_are_not_found(crm):
    sf, token = crm
    status, _, body = call(f"{sf.url}/services/data/v41.0/query?q=SELECT+Id+FROM+Contact",
                           headers={"Authorization": f"Bearer {token}"})
    assert (status, json.loads(body)) == (
        404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])
    assert call(sf.url + "/nowhere")[0] == 404
    assert sum(sf.calls.values()) == 0


# -- faults, keep-alive, lifecycle ------------------------------------------------------------

def test_fail_next_answers_the_given_status_body_and_type_then_recovers(crm):
    sf, token = crm
    sf.fail_next("search", status=503, body=b"<html>down</html>", content_type="text/html",
                 count=2)
    for _ in range(2):
        status, headers, body = call(f"{sf.url}{API}/search?q=x")
        assert (status, body, headers["content-type"]) == (503, b"<html>down</html>", "text/html")
    assert rest(sf, "search", sosl("4155550101"), token)[0] == 200
    assert sf.calls["search"] == 3


def test_fail_next_without_body_uses_the_salesforce_error_shape(crm):
    sf, token = crm
    sf.fail_next("query", status=500)
    status, body = rest(sf, "query", "SELECT Id FROM Contact", token)
    assert status == 500 and body[0]["errorCode"] == "UNKNOWN_EXCEPTION"


def test_reset_closes_the_connection_without_an_answer(crm):
    sf, token = crm
    sf.fail_next("query", reset=True)
    with pytest.raises(ConnectionError):
        rest(sf, "query", "SELECT Id FROM Contact", token)
    assert rest(sf, "query", "SELECT Id FROM Contact", token)[0] == 200


def test_stall_delays_the_answer(sf):
    sf.fail_next("token", stall=0.3)
    started = time.monotonic()
    status, _ = refresh(sf, "unknown")
    assert status == 400 and time.monotonic() - started >= 0.3


def test_stop_does_not_wait_for_a_stalled_request():
    sf = SalesforceStandIn().start()
    sf.fail_next("token", stall=30)
    outcome: list[object] = []
    client = threading.Thread(target=lambda: outcome.append(_try(lambda: refresh(sf, "x"))))
    client.start()
    deadline = time.monotonic() + 5
    while sf.calls["token"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)  # bounded wait for the request to reach the stall
    started = time.monotonic()
    sf.stop()
    client.join(timeout=5)
    assert time.monotonic() - started < 3
    assert isinstance(outcome[0], (ConnectionError, http.client.HTTPException))


def _try(action):
    try:
        return action()
    except Exception as error:  # the outcome under test is the exception itself
        return error


def test_keep_alive_serves_several_requests_on_one_connection(crm):
    sf, token = crm
    parts = urllib.parse.urlsplit(sf.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        for _ in range(3):
            connection.request("GET", f"{API}/query?q=SELECT+Id+FROM+User",
                               headers={"Authorization": f"Bearer {token}"})
            response = connection.getresponse()
            assert response.status == 200 and response.getheader("Connection") != "close"
            response.read()
            local_port = connection.sock.getsockname()[1]
        assert local_port == connection.sock.getsockname()[1]
    finally:
        connection.close()
    assert sf.calls["query"] == 3


def test_ids_are_18_characters_with_a_valid_checksum(crm):
    sf, _ = crm
    user = sf.add_user("dave@sfdcflex.demo", "Dave")
    account = sf.add_account("Zeta")
    contact = sf.add_contact("Zed", account_id=account)
    for record_id, prefix in [(user["user_id"], "005"), (account, "001"), (contact, "003")]:
        assert len(record_id) == 18 and record_id.startswith(prefix)
        assert id18(record_id[:15]) == record_id


# -- demo data ---------------------------------------------------------------------------------

def test_demo_data_covers_the_demo_story():
    with SalesforceStandIn() as sf, IamStandIn() as iam:
        demo = seed_demo(sf, iam)
        contacts = sf.org.all("Contact")
        accounts = sf.org.all("Account")
        assert len(contacts) >= 12 and len(accounts) == 4
        assert all(a["Type"] and a["AccountNumber"] and a["SLA__c"] and a["CustomerPriority__c"]
                   for a in accounts)
        assert any(c["MobilePhone"] and not c["Phone"] for c in contacts)
        assert sf.org.unindexed
        assert [a["can_link"] for a in demo["agents"]] == [True, True, False]
        assert set(iam.agents) == {a["realm_user_id"] for a in demo["agents"]}
        token = sf.issue_tokens("alice@sfdcflex.demo")["access_token"]
        hits = {}
        for task in demo["tasks"]:
            caller = task["caller"]
            if task.get("channel") == "email":
                text = f"FIND {{{caller}}} IN EMAIL FIELDS RETURNING Contact(Id), Lead(Id)"
            else:
                country = next(code for code in ("+1", "+44", "+49", "+61") if caller.startswith(code))
                text = sosl(caller[len(country):]) + ", Lead(Id)"
            hits[caller] = len(rest(sf, "search", text, token)[1]["searchRecords"])
        assert hits["+14155550101"] == 2 and hits["+13125550199"] == 0
        assert hits["+442079460958"] == 2  # two people share the switchboard
        assert hits["priya.natarajan@acme.example"] == 1 and sf.org.all("Lead")
        assert hits["+14155550109"] == 0  # not indexed yet: only the SOQL fallback finds it
        assert all(hits[c] >= 1 for c in hits if c not in ("+13125550199", "+14155550109"))
