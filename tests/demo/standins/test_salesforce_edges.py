"""The Salesforce stand-in's error and edge paths over real HTTP, each answered as Salesforce does.

REST errors are a JSON array of {"message", "errorCode"} with Salesforce's status (400
MALFORMED_QUERY / MALFORMED_SEARCH / INVALID_TYPE / INVALID_FIELD / JSON_PARSER_ERROR, 404
NOT_FOUND, 405 METHOD_NOT_ALLOWED); OAuth errors are {"error", "error_description"} or a
redirect back with `error=`; the Identity URL answers plain-text codes (403 Missing_OAuth_Token,
Bad_OAuth_Token, Wrong_Org; 404 Bad_Id). One stand-in serves the whole module.
"""
from __future__ import annotations

import base64
import datetime
import json
import urllib.parse

import pytest

from sfdcflex.demo.standins import SalesforceStandIn

from tests.support.record_pages import log_in, page
from tests.support.standins import API, REDIRECT, VERIFIER, call, challenge, query_of

OTHER_ORG = "00D5e000000ZzZzEAA"
UNKNOWN_CONTACT = "0035e0000000zzzAAA"
BERLIN = datetime.timezone(datetime.timedelta(hours=2))


@pytest.fixture(scope="module")
def sf():
    with SalesforceStandIn() as server:
        server.alice = server.add_user("alice@sfdcflex.demo", "Alice Johnson")["user_id"]
        server.bob = server.add_user("bob@sfdcflex.demo", "Bob Stone")["user_id"]
        server.mallory = server.add_user("mallory@other.org", "Mallory Other",
                                         org_id=OTHER_ORG)["user_id"]
        acme = server.add_account("Acme")
        globex = server.add_account("Globex")
        server.jane = server.add_contact(
            "Jane Cooper", account_id=acme, title="VP", phone="(415) 555-0101",
            last_modified=datetime.datetime(2024, 5, 14, 11, 21, 7, tzinfo=BERLIN))
        server.sam = server.add_contact("Sam Brown", account_id=globex, title="CTO",
                                        phone="(415) 555-0102")
        server.lone = server.add_contact("Lone Wolf", mobile_phone="+44 20 7946 0958")
        server.token = server.issue_tokens("alice@sfdcflex.demo")["access_token"]
        yield server


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def rest(sf: SalesforceStandIn, kind: str, text: str) -> tuple[int, object]:
    url = f"{sf.url}{API}/{kind}?{urllib.parse.urlencode({'q': text})}"
    status, _, body = call(url, headers=bearer(sf.token))
    return status, json.loads(body)


def rest_error_of(body: object) -> str:
    """The errorCode of a Salesforce REST error body, checking its shape on the way."""
    assert isinstance(body, list) and len(body) == 1
    assert set(body[0]) == {"message", "errorCode"} and body[0]["message"]
    return body[0]["errorCode"]


def names(body: dict) -> list[str]:
    return [record["Name"] for record in body["records"]]


# -- seeding and test controls ----------------------------------------------------------------

def test_a_last_modified_datetime_is_stored_in_salesforces_utc_format(sf):
    status, body = rest(sf, "query", "SELECT LastModifiedDate FROM Contact WHERE Name = 'Jane Cooper'")
    assert status == 200
    assert [r["LastModifiedDate"] for r in body["records"]] == ["2024-05-14T09:21:07.000+0000"]


def test_issue_tokens_for_an_unknown_user_raises_key_error(sf):
    with pytest.raises(KeyError):
        sf.issue_tokens("nobody@sfdcflex.demo")


def test_a_deleted_record_is_gone_from_queries_reads_and_pages(sf):
    gone = sf.add_contact("Gone Soon", phone="(415) 555-0199")
    sf.org.delete("Contact", gone)
    assert rest(sf, "query", "SELECT Id FROM Contact WHERE Name = 'Gone Soon'")[1]["records"] == []
    status, _, body = call(f"{sf.url}{API}/sobjects/Contact/{gone}", headers=bearer(sf.token))
    assert status == 404 and rest_error_of(json.loads(body)) == "NOT_FOUND"
    cookie, _ = log_in(sf)
    assert page(sf, f"/lightning/r/Contact/{gone}/view", cookie)[0] == 404


# -- the Identity URL -------------------------------------------------------------------------

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


# -- OAuth: authorize ---------------------------------------------------------------------------

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


# -- OAuth: token -------------------------------------------------------------------------------

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


# -- REST: methods ------------------------------------------------------------------------------

@pytest.mark.parametrize("method, path, allowed", [
    ("POST", "/query?q=SELECT+Id+FROM+Contact", "HEAD,GET"),
    ("DELETE", "/search?q=FIND+%7B4155550101%7D", "HEAD,GET"),
    ("PATCH", "/sobjects/Task", "HEAD,GET,POST"),
    ("POST", "/sobjects/Task/00T5e0000000zzzAAA", "HEAD,GET,PATCH"),
    ("PUT", "/sobjects/Task/00T5e0000000zzzAAA", "HEAD,GET,POST,PATCH"),
])
def test_a_method_the_resource_does_not_take_is_405_method_not_allowed(sf, method, path, allowed):
    status, _, body = call(f"{sf.url}{API}{path}", method, headers=bearer(sf.token))
    assert status == 405
    assert json.loads(body) == [{"message": f"HTTP Method '{method}' not allowed. Allowed are {allowed}",
                                 "errorCode": "METHOD_NOT_ALLOWED"}]


# -- REST: one record ---------------------------------------------------------------------------

def test_get_one_record_answers_its_fields_and_attributes(sf):
    url = f"{sf.url}{API}/sobjects/Contact/{sf.jane}"
    status, _, body = call(url, headers=bearer(sf.token))
    record = json.loads(body)
    assert status == 200
    assert record["attributes"] == {"type": "Contact", "url": f"{API}/sobjects/Contact/{sf.jane}"}
    assert (record["Id"], record["Name"], record["Title"]) == (sf.jane, "Jane Cooper", "VP")
    status, headers, body = call(url, "HEAD", headers=bearer(sf.token))
    assert (status, body) == (200, b"") and int(headers["content-length"]) > 0


def test_an_unknown_or_unshared_record_is_404_not_found(sf):
    hidden = sf.add_contact("Private Person")
    sf.writes.rules.hidden.add((sf.alice, hidden))
    for record_id in (UNKNOWN_CONTACT, hidden):
        status, _, body = call(f"{sf.url}{API}/sobjects/Contact/{record_id}", headers=bearer(sf.token))
        assert status == 404 and rest_error_of(json.loads(body)) == "NOT_FOUND"


@pytest.mark.parametrize("body", [b"not json", b"[{\"Subject\": \"Call\"}]", b"\"Call\""])
def test_a_write_body_that_is_not_a_json_object_is_json_parser_error(sf, body):
    status, _, reply = call_raw(sf, "POST", f"{API}/sobjects/Task", body)
    assert status == 400
    refusal = json.loads(reply)
    assert refusal[0]["errorCode"] == "JSON_PARSER_ERROR" and refusal[0]["message"]
    assert sf.org.all("Task") == []


def call_raw(sf: SalesforceStandIn, method: str, path: str, body: bytes) -> tuple[int, dict, bytes]:
    import http.client
    parts = urllib.parse.urlsplit(sf.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        connection.request(method, path, body, {**bearer(sf.token), "Content-Type": "application/json"})
        reply = connection.getresponse()
        return reply.status, dict(reply.getheaders()), reply.read()
    finally:
        connection.close()


# -- SOQL -----------------------------------------------------------------------------------------

# Other tests add contacts to the shared org; these queries look at the fixture's three.
THREE = "Name IN ('Jane Cooper', 'Sam Brown', 'Lone Wolf')"


@pytest.mark.parametrize("where, expected", [
    ("(Title = 'VP' OR Title = 'CTO') AND Name NOT IN ('Sam Brown')", ["Jane Cooper"]),
    ("Title != 'VP'", ["Lone Wolf", "Sam Brown"]),
    ("Title <> 'VP' AND (Name = 'Sam Brown')", ["Sam Brown"]),
    ("Account.Name = 'globex'", ["Sam Brown"]),
    ("Title = null", ["Lone Wolf"]),
])
def test_where_with_parentheses_not_in_and_not_equal(sf, where, expected):
    status, body = rest(sf, "query", f"SELECT Name FROM Contact WHERE {THREE} AND ({where}) ORDER BY Name")
    assert (status, names(body)) == (200, expected)


@pytest.mark.parametrize("order, expected", [
    ("Title", ["Lone Wolf", "Sam Brown", "Jane Cooper"]),          # ASC puts nulls first
    ("Title ASC NULLS FIRST", ["Lone Wolf", "Sam Brown", "Jane Cooper"]),
    ("Title DESC", ["Jane Cooper", "Sam Brown", "Lone Wolf"]),     # DESC puts nulls last
    ("Title DESC NULLS FIRST", ["Lone Wolf", "Jane Cooper", "Sam Brown"]),
    ("Title ASC NULLS LAST", ["Sam Brown", "Jane Cooper", "Lone Wolf"]),
    ("Account.Name DESC NULLS LAST, Name", ["Sam Brown", "Jane Cooper", "Lone Wolf"]),
    ("Account.Name NULLS FIRST, Name DESC", ["Lone Wolf", "Jane Cooper", "Sam Brown"]),
])
def test_order_by_directions_nulls_and_several_keys(sf, order, expected):
    status, body = rest(sf, "query", f"SELECT Name FROM Contact WHERE {THREE} ORDER BY {order}")
    assert (status, names(body)) == (200, expected)


@pytest.mark.parametrize("text", [
    # Each is followed by a clause that would parse if the broken part were skipped over.
    "SELECT Id FROM Contact WHERE Name = ORDER BY Name",       # no value
    "SELECT Id FROM Contact WHERE Name = ) LIMIT 5",           # a value that is no literal
    "SELECT Id FROM Contact WHERE Name LIMIT 5",               # no operator
    "SELECT Id FROM Contact WHERE Name 'x'",
    "SELECT Id FROM Contact WHERE (Name = 'x'",                # unclosed parenthesis
    "SELECT Id FROM Contact ORDER BY Name NULLS LIMIT 5",      # NULLS neither FIRST nor LAST
    "SELECT Id FROM Contact ORDER BY Name NULLS LOW",
    "SELECT Id FROM Contact LIMIT",                            # LIMIT without a number
    "SELECT Id FROM Contact LIMIT many",
    "SELECT Id FROM Contact WHERE Name = 'x' )",               # something after the end
])
def test_malformed_soql_is_400_malformed_query(sf, text):
    status, body = rest(sf, "query", text)
    assert (status, rest_error_of(body)) == (400, "MALFORMED_QUERY")


@pytest.mark.parametrize("text, code", [
    ("SELECT Id FROM Opportunity__x", "INVALID_TYPE"),
    ("SELECT Bogus.Name FROM Contact", "INVALID_FIELD"),
    ("SELECT Account.Name.Owner FROM Contact", "INVALID_FIELD"),
])
def test_unknown_objects_and_relationships_are_refused_by_name(sf, text, code):
    status, body = rest(sf, "query", text)
    assert (status, rest_error_of(body)) == (400, code)


# -- SOSL -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "FND {4155550101} RETURNING Contact",           # not FIND {
    "FIND {4155550101 RETURNING Contact",           # no closing brace
    "FIND {a} RETURNING Contact",                   # a one-character term
    "FIND {4155550101} IN ADDRESS FIELDS RETURNING Contact",   # no such search group
])
def test_malformed_sosl_is_400_malformed_search(sf, text):
    status, body = rest(sf, "search", text)
    assert (status, rest_error_of(body)) == (400, "MALFORMED_SEARCH")


def test_returning_an_object_without_fields_answers_ids(sf):
    status, body = rest(sf, "search", "FIND {4155550101} IN PHONE FIELDS RETURNING Contact, Account(Name)")
    assert status == 200
    assert body["searchRecords"] == [{"attributes": {"type": "Contact",
                                                     "url": f"{API}/sobjects/Contact/{sf.jane}"},
                                      "Id": sf.jane}]


def test_find_without_returning_searches_every_object(sf):
    lead = sf.add_lead("Grace Prospect", "Hopper Industries", phone="+1 415 555 0102")
    status, body = rest(sf, "search", "FIND {4155550102}")
    assert status == 200
    assert sorted((r["attributes"]["type"], r["Id"]) for r in body["searchRecords"]) == [
        ("Contact", sf.sam), ("Lead", lead)]
    assert all(set(r) == {"attributes", "Id"} for r in body["searchRecords"])


# -- record pages ---------------------------------------------------------------------------------

def test_a_garbled_cookie_header_is_no_session(sf):
    status, headers, _ = page(sf, f"/lightning/r/Contact/{sf.jane}/view", "a,b=1")
    assert status == 302 and headers["location"].startswith("/?startURL=")


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_the_home_page_takes_get_head_and_post_only(sf, method):
    status, headers, body = call(sf.url + "/", method)
    assert status == 405 and headers["allow"] == "GET, HEAD, POST"
    assert b"Method not allowed" in body


def test_a_modified_date_not_in_rest_format_is_shown_as_written(sf):
    odd = sf.add_contact("Odd Date", last_modified="last <Tuesday>")
    cookie, _ = log_in(sf)
    status, _, shown = page(sf, f"/lightning/r/Contact/{odd}/view", cookie)
    assert status == 200 and "<dt>Last modified</dt><dd>last &lt;Tuesday&gt;</dd>" in shown
    status, _, shown = page(sf, f"/lightning/r/Contact/{sf.jane}/view", cookie)
    assert "<dt>Last modified</dt><dd>2024-05-14 09:21 UTC</dd>" in shown
