"""The Salesforce client: OAuth with PKCE, rotation, REST errors, paging, writes.

Its own logic (the REST_ERRORS table, the token endpoint's errors, what it sends) is tested in
process through a scripted Sender; the wire against the Salesforce stand-in, where odd answers
are planted with `fail_next`. What an agent is answered for each error: tests/test_errors.py.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import socket
import urllib.parse

import pytest

from sfdcflex.clients.errors import (CodeRefused, InsufficientAccess, InvalidGrant, RecordNotFound,
                                     RecordRejected, RequestLimitExceeded, SalesforceError, SessionExpired,
                                     Unreachable, UrlRefused)
from sfdcflex.clients.salesforce import REST_ERRORS, SalesforceClient, soql_quote, sosl_escape
from sfdcflex.demo.standins import SalesforceStandIn, submit_consent
from sfdcflex.errors import answer_for
from tests.support.senders import ScriptedSender
from tests.support.transports import TimeoutsSeen

CLIENT_ID, CLIENT_SECRET = "demo-client-id", "demo-client-secret"
REDIRECT_URI = "http://127.0.0.1:3000/oauth-callback"
USERNAME = "ada@example.com"
RECORD_ID = "003000000000001AAA"
ORG = "https://example.my.salesforce.com"


@pytest.fixture
def sf():
    with SalesforceStandIn() as standin:
        standin.add_user(USERNAME, "Ada Lovelace")
        yield standin


@pytest.fixture
def client(sf):
    return SalesforceClient(sf.url, CLIENT_ID, CLIENT_SECRET, timeout=2.0)


@pytest.fixture
def tokens(sf):
    return sf.issue_tokens(USERNAME)


@pytest.fixture
def token(tokens):
    return tokens["access_token"]


@pytest.fixture
def sender():
    return ScriptedSender()


@pytest.fixture
def scripted(sender):
    """A client whose every call is answered by `sender`, in process."""
    return SalesforceClient(ORG, CLIENT_ID, CLIENT_SECRET, transport=sender)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def consent_code(client: SalesforceClient, challenge: str, state: str = "state-1") -> str:
    location = submit_consent(client.authorize_url(REDIRECT_URI, state, challenge), USERNAME)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    assert query["state"] == [state]
    return query["code"][0]


def _answers_next(sf, endpoint: str, status: int, body: object) -> None:
    """The stand-in's next call of `endpoint` answers `status` with this JSON body."""
    sf.fail_next(endpoint, status=status, body=json.dumps(body).encode(), content_type="application/json")


def _error(code: str, message: str, **more) -> list[dict]:
    """A REST error body in Salesforce's array shape."""
    return [{"errorCode": code, "message": message, **more}]


def _raised(kind, call, *args, **kwargs):
    with pytest.raises(kind) as raised:
        call(*args, **kwargs)
    return raised.value


def answered(error) -> tuple[int, str]:
    """The status and error code an agent gets for `error` (sfdcflex/errors.py's table)."""
    answer = answer_for(error)
    return answer.status, answer.code


# --- settings and the wire ----------------------------------------------------------------------

@pytest.mark.parametrize("urls,setting", [(("http://example.com", None), "SFDC_INSTANCE_URL"),
                                          ((ORG, "http://example.com"), "SFDC_LOGIN_URL")])
def test_a_plain_http_url_is_refused_naming_its_setting(urls, setting):
    """The setting's name is in the line start-up prints."""
    instance_url, login_url = urls
    refused = _raised(UrlRefused, SalesforceClient, instance_url, CLIENT_ID, CLIENT_SECRET, login_url=login_url)
    assert refused.setting == setting
    assert str(refused) == (f"{setting} must use https:// (http:// is allowed only for "
                            "localhost / 127.0.0.1 / ::1)")


def test_a_salesforce_call_may_take_eight_seconds_by_default(sf, token):
    transport = TimeoutsSeen()
    try:
        info = SalesforceClient(sf.url, CLIENT_ID, CLIENT_SECRET, transport=transport).userinfo(token)
    finally:
        transport.close()
    assert info["preferred_username"] == USERNAME and transport.timeouts == [8.0]


def test_a_network_failure_names_salesforce():
    """Nothing listens on the port: the failure's words name the service."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = SalesforceClient(f"http://127.0.0.1:{port}", CLIENT_ID, CLIENT_SECRET, timeout=1.0)
    assert _raised(SalesforceError, client.userinfo, "any-token").message == \
        "Salesforce connection failed: refused"


# --- OAuth ---------------------------------------------------------------------------------

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


def test_a_wrong_client_secret_tells_the_operator(sf):
    client = SalesforceClient(sf.url, CLIENT_ID, "wrong-secret-value")
    verifier, challenge = pkce_pair()
    with pytest.raises(SalesforceError) as raised:
        client.exchange_code(consent_code(client, challenge), REDIRECT_URI, verifier)
    assert answered(raised.value)[0] == 502
    assert "SFDC_CLIENT_ID" in raised.value.message and "SFDC_CLIENT_SECRET" in raised.value.message
    assert "wrong-secret-value" not in raised.value.message


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
    _answers_next(sf, "token", 200, {"access_token": "a", "id": "i", "instance_url": sf.url})
    assert _raised(SalesforceError, client.exchange_code, "code", REDIRECT_URI, "verifier").message == (
        "Salesforce gave no refresh token: allow the refresh_token scope in the connected app's OAuth policies")


def test_a_token_answer_without_an_access_token_is_refused_in_these_words(sf, client):
    _answers_next(sf, "token", 200, {"id": "i", "instance_url": sf.url})
    assert _raised(SalesforceError, client.refresh, "refresh-token").message == \
        "Salesforce's token answer lacks access_token, id or instance_url"


def test_a_300_from_the_token_endpoint_is_an_error_naming_status_and_error(sf, client):
    """A 300 is not taken for tokens, and its words name the status and Salesforce's error."""
    _answers_next(sf, "token", 300, {"error": "odd_error", "error_description": "odd words",
                                     "access_token": "a", "id": "i", "instance_url": sf.url})
    assert _raised(SalesforceError, client.refresh, "refresh-token").message == \
        "Salesforce's token endpoint answered 300 odd_error: odd words"


def test_a_token_error_without_error_fields_says_error(sf, client):
    _answers_next(sf, "token", 400, {})
    assert _raised(SalesforceError, client.refresh, "refresh-token").message == \
        "Salesforce's token endpoint answered 400 error: "


def test_other_token_endpoint_errors_name_salesforces_error(client, sf, tokens):
    sf.fail_next("token", status=400, body=b'{"error":"unsupported_grant_type","error_description":"nope"}')
    with pytest.raises(SalesforceError) as raised:
        client.refresh(tokens["refresh_token"])
    assert "unsupported_grant_type" in raised.value.message and "nope" in raised.value.message


@pytest.mark.parametrize("description,said", [("expired access/refresh token", "expired access/refresh token"),
                                              (None, "invalid_grant")])
def test_a_refused_refresh_says_why_and_what_to_do(sf, client, description, said):
    _answers_next(sf, "token", 400, {"error": "invalid_grant", "error_description": description} if description
                  else {"error": "invalid_grant"})
    assert _raised(InvalidGrant, client.refresh, "refresh-token").message == \
        f"Salesforce no longer accepts this agent's link ({said}): connect Salesforce again"


def test_a_refused_code_says_what_to_do(sf, client):
    _answers_next(sf, "token", 400, {"error": "invalid_grant", "error_description": "expired authorization code"})
    refused = _raised(CodeRefused, client.exchange_code, "code", REDIRECT_URI, "verifier")
    assert (answered(refused)[1], refused.message) == (
        "invalid_code", "Salesforce refused the authorization code (used or expired): connect Salesforce again")


@pytest.mark.parametrize("error", ["invalid_client", "invalid_client_id", "invalid_client_credentials"])
def test_refused_app_credentials_name_the_settings(sf, client, error):
    _answers_next(sf, "token", 400, {"error": error, "error_description": "client secret invalid"})
    assert _raised(SalesforceError, client.refresh, "refresh-token").message == \
        "Salesforce refused this app's credentials: check SFDC_CLIENT_ID and SFDC_CLIENT_SECRET"


def test_a_redirect_uri_mismatch_names_the_callback(sf, client):
    _answers_next(sf, "token", 400, {"error": "redirect_uri_mismatch", "error_description": "redirect_uri must match"})
    assert _raised(SalesforceError, client.exchange_code, "code", REDIRECT_URI, "verifier").message == (
        "Salesforce refused the redirect URI: the connected app's callback URL must match PUBLIC_URL's oauth-callback")


# --- revoke and userinfo ----------------------------------------------------------------------

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
    assert _raised(SalesforceError, client.revoke, "refresh-token").message == \
        "Salesforce could not revoke the token: it answered 401"


def test_userinfo_with_an_expired_token_is_session_expired(client, sf, tokens):
    info = client.userinfo(tokens["access_token"])
    assert info["organization_id"].startswith("00D5e000000AbCd")
    sf.expire_access_tokens()
    with pytest.raises(SessionExpired):
        client.userinfo(tokens["access_token"])


def test_an_expired_userinfo_token_is_said_in_these_words(client):
    assert _raised(SessionExpired, client.userinfo, "not-a-live-token").message == "The Salesforce session expired"


def test_userinfo_outage_is_a_salesforce_error_not_an_expiry(client, sf, tokens):
    sf.fail_next("userinfo", status=503)
    with pytest.raises(SalesforceError) as raised:
        client.userinfo(tokens["access_token"])
    assert not isinstance(raised.value, SessionExpired) and "503" in raised.value.message


def test_a_userinfo_403_without_bad_oauth_token_is_not_an_expiry(sf, client, token):
    """Not every 403 is an expired session."""
    _answers_next(sf, "userinfo", 403, _error("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."))
    assert _raised(RequestLimitExceeded, client.userinfo, token).message == \
        "Salesforce refused the call: the org's daily API request limit is exceeded"


def test_a_userinfo_300_is_an_error(sf, client, token):
    """A 300 is not read as the user."""
    _answers_next(sf, "userinfo", 300, _error("MULTIPLE_CHOICES", "pick one"))
    assert _raised(SalesforceError, client.userinfo, token).message == "Salesforce answered 300 MULTIPLE_CHOICES: pick one"


# --- REST ----------------------------------------------------------------------------------

def test_query_returns_records_with_related_fields(client, sf, tokens):
    account = sf.add_account("Acme", type="Customer", account_number="A-1", sla="Gold", priority="High")
    sf.add_contact("Grace Hopper", account_id=account, title="CTO", phone="(415) 555-0101")
    records = client.query(tokens["access_token"],
                           "SELECT Id, Name, Account.Name FROM Contact WHERE Phone = '(415) 555-0101'")
    assert [(r["Name"], r["Account"]["Name"]) for r in records] == [("Grace Hopper", "Acme")]


def test_search_returns_search_records(client, sf, tokens):
    sf.add_contact("Grace Hopper", phone="(415) 555-0101")
    records = client.search(tokens["access_token"],
                            "FIND {4155550101} IN PHONE FIELDS RETURNING Contact(Id, Name)")
    assert [r["Name"] for r in records] == ["Grace Hopper"]


@pytest.mark.parametrize("hostile", ["O'Brien", "back\\slash", 'say "hi"', "two\nlines\r\t\b\f",
                                     "x' OR Name != 'y", "\\' OR Name != '"])
def test_soql_quote_round_trips_through_the_query_parser(client, sf, tokens, hostile):
    sf.add_contact(hostile)
    sf.add_contact("Bystander")
    soql = f"SELECT Id, Name FROM Contact WHERE Name = {soql_quote(hostile)}"
    records = client.query(tokens["access_token"], soql)
    assert [r["Name"] for r in records] == [hostile]


def test_sosl_escape_escapes_every_reserved_character():
    assert sosl_escape("a?b&c|d!e{f}g[h]i(j)k^l~m*n:o\\p\"q'r+s-t") == \
        "a\\?b\\&c\\|d\\!e\\{f\\}g\\[h\\]i\\(j\\)k\\^l\\~m\\*n\\:o\\\\p\\\"q\\'r\\+s\\-t"
    assert sosl_escape("4155550101") == "4155550101"


@pytest.mark.parametrize("helper,words", [(soql_quote, "soql_quote takes a str"),
                                          (sosl_escape, "sosl_escape takes a str")])
def test_the_quoting_helpers_refuse_a_non_string_in_these_words(helper, words):
    assert str(_raised(TypeError, helper, 42)) == words


def test_sosl_escaped_term_survives_the_search_parser(client, sf, tokens):
    records = client.search(tokens["access_token"],
                            f"FIND {{{sosl_escape('a} OR {b')}}} RETURNING Contact(Id, Name)")
    assert records == []


def test_an_expired_session_is_session_expired(client, sf, tokens):
    sf.expire_access_tokens()
    with pytest.raises(SessionExpired):
        client.query(tokens["access_token"], "SELECT Id FROM Contact")


def test_an_expired_rest_session_is_said_in_these_words(sf, client, token):
    sf.fail_next("query", status=401)       # the stand-in's own 401 INVALID_SESSION_ID body
    assert _raised(SessionExpired, client.query, token, "SELECT Id FROM Contact").message == \
        "The Salesforce session expired"


def test_another_401_is_a_salesforce_error_not_a_refresh(client, sf, tokens):
    sf.fail_next("query", status=401, body=b'[{"message":"Bad header","errorCode":"INVALID_AUTH_HEADER"}]')
    with pytest.raises(SalesforceError) as raised:
        client.query(tokens["access_token"], "SELECT Id FROM Contact")
    assert not isinstance(raised.value, SessionExpired)
    assert "INVALID_AUTH_HEADER" in raised.value.message and "Bad header" in raised.value.message


def test_request_limit_exceeded_is_said_as_such(client, sf, tokens):
    sf.request_limit_exceeded = True
    with pytest.raises(RequestLimitExceeded) as raised:
        client.search(tokens["access_token"], "FIND {4155550101} RETURNING Contact(Id)")
    assert answered(raised.value) == (502, "salesforce_request_limit")
    assert "limit" in raised.value.message


def test_the_request_limit_is_said_in_these_words(sf, client, token):
    sf.fail_next("search", status=403)      # the stand-in's own 403 REQUEST_LIMIT_EXCEEDED body
    assert _raised(RequestLimitExceeded, client.search, token, "FIND {x} RETURNING Contact(Id)").message == \
        "Salesforce refused the call: the org's daily API request limit is exceeded"


def test_a_403_for_missing_access_is_not_the_request_limit(sf, client, token):
    """Not every 403 is the request limit."""
    _answers_next(sf, "query", 403, _error("INSUFFICIENT_ACCESS_OR_READONLY", "no access"))
    refused = _raised(InsufficientAccess, client.query, token, "SELECT Id FROM Contact")
    assert (answered(refused)[0], refused.message) == (
        403, "Salesforce refused it: INSUFFICIENT_ACCESS_OR_READONLY: no access")


def test_a_malformed_query_names_salesforce_error_code(client, tokens):
    with pytest.raises(SalesforceError) as raised:
        client.query(tokens["access_token"], "SELECT FROM WHERE")
    assert answered(raised.value)[1] == "salesforce_error" and "MALFORMED_QUERY" in raised.value.message


@pytest.mark.parametrize("fault", [{"status": 500, "body": b"<html>oops</html>", "content_type": "text/html"},
                                   {"reset": True}, {"stall": 3}])
def test_upstream_trouble_is_a_salesforce_error(sf, tokens, fault):
    client = SalesforceClient(sf.url, CLIENT_ID, CLIENT_SECRET, timeout=0.3)
    sf.fail_next("query", **fault)
    with pytest.raises(SalesforceError) as raised:
        client.query(tokens["access_token"], "SELECT Id FROM Contact")
    assert answered(raised.value)[0] == 502 and tokens["access_token"] not in raised.value.message


def test_a_refusal_code_in_a_500_is_salesforce_failing(sf, client, token):
    """A 500 is not taken for the agent's refused data."""
    _answers_next(sf, "sobject-create", 500, _error("REQUIRED_FIELD_MISSING", "Required fields are missing"))
    failed = _raised(SalesforceError, client.create, token, "Contact", {"LastName": "x"})
    assert type(failed) is SalesforceError and failed.status == 500
    assert (answered(failed)[0], failed.message) == (502, "Salesforce answered 500 REQUIRED_FIELD_MISSING: "
                                                          "Required fields are missing")


@pytest.mark.parametrize("fields,named", [
    (None, ""), ([], ""), (["LastName", "Email"], " (fields: LastName, Email)"),
    (["A", "B", "C", "D", "E", "F"], " (fields: A, B, C, D, E)"),
    (["X" * 100], f" (fields: {'X' * 80})")])
def test_a_refusal_names_at_most_five_fields_of_80_characters(sf, client, token, fields, named):
    _answers_next(sf, "sobject-create", 400, _error("REQUIRED_FIELD_MISSING", "Required fields are missing",
                                                    **({} if fields is None else {"fields": fields})))
    refused = _raised(RecordRejected, client.create, token, "Contact", {"FirstName": "x"})
    assert refused.message == f"Salesforce refused it: REQUIRED_FIELD_MISSING: Required fields are missing{named}"


@pytest.mark.parametrize("body,said", [
    ([{"message": "no code given"}], "Salesforce answered 400 error: no code given"),
    ([{"errorCode": "ODD_CODE"}], "Salesforce answered 400 ODD_CODE: "),
    ({"errorCode": "ODD_CODE", "message": "one object, not an array"},
     "Salesforce answered 400 ODD_CODE: one object, not an array")])
def test_an_unknown_rest_error_is_named_as_given(sf, client, token, body, said):
    """One object is read as one error; a missing errorCode is said "error", a missing message ""."""
    _answers_next(sf, "query", 400, body)
    assert _raised(SalesforceError, client.query, token, "SELECT Id FROM Contact").message == said


def test_a_rest_300_is_an_error(sf, client, token):
    """A 300 is not read as the answer."""
    _answers_next(sf, "query", 300, _error("MULTIPLE_CHOICES", "pick one"))
    assert _raised(SalesforceError, client.query, token, "SELECT Id FROM Contact").message == \
        "Salesforce answered 300 MULTIPLE_CHOICES: pick one"


def test_a_rest_answer_that_is_not_json_is_said_so(sf, client, token):
    sf.fail_next("query", status=200, body=b"<html>maintenance</html>", content_type="text/html")
    assert _raised(SalesforceError, client.query, token, "SELECT Id FROM Contact").message == \
        "Salesforce answered 200 with a body that is not JSON"


# --- query paging, search ---------------------------------------------------------------------

def page(records: list[dict], next_url: str | None) -> bytes:
    body = {"totalSize": 99, "done": next_url is None, "records": records}
    if next_url:
        body["nextRecordsUrl"] = next_url
    return json.dumps(body).encode()


def test_query_follows_next_records_url(client, sf, tokens):
    sf.add_contact("Second Page")
    next_url = "/services/data/v62.0/query?" + urllib.parse.urlencode({"q": "SELECT Id, Name FROM Contact"})
    sf.fail_next("query", status=200, body=page([{"Name": "First Page"}], next_url))
    records = client.query(tokens["access_token"], "SELECT Id, Name FROM Contact")
    assert [r["Name"] for r in records] == ["First Page", "Second Page"]
    assert sf.calls["query"] == 2


def test_query_paging_is_bounded(client, sf, tokens):
    next_url = "/services/data/v62.0/query?q=SELECT+Id+FROM+Contact"
    sf.fail_next("query", status=200, body=page([{"Name": "Again"}], next_url), count=50)
    records = client.query(tokens["access_token"], "SELECT Id FROM Contact")
    assert sf.calls["query"] == len(records) == 5


def test_a_query_answer_without_records_is_said_so(sf, client, token):
    _answers_next(sf, "query", 200, {"totalSize": 0, "done": True})
    assert _raised(SalesforceError, client.query, token, "SELECT Id FROM Contact").message == \
        "Salesforce's query answer has no records list"


@pytest.mark.parametrize("page", [
    {"done": True, "nextRecordsUrl": "/services/data/v62.0/query/01g000000000001-2000"},
    {"nextRecordsUrl": "/services/data/v62.0/query/01g000000000001-2000"},
    {"done": False, "nextRecordsUrl": "/data/v62.0/query/01g000000000001-2000"}])
def test_paging_stops_when_done_or_unsaid_or_when_the_next_page_is_not_salesforce_s(sf, client, token, page):
    """A missing `done` is read as done."""
    _answers_next(sf, "query", 200, {"totalSize": 9, "records": [{"Name": "First Page"}], **page})
    calls = sf.calls["query"]
    assert client.query(token, "SELECT Name FROM Contact") == [{"Name": "First Page"}]
    assert sf.calls["query"] == calls + 1


def test_a_search_answer_without_search_records_is_said_so(sf, client, token):
    _answers_next(sf, "search", 200, {"records": []})
    assert _raised(SalesforceError, client.search, token, "FIND {x} RETURNING Contact(Id)").message == \
        "Salesforce's search answer has no searchRecords list"


# --- writes -------------------------------------------------------------------------------------

def test_a_create_answered_200_is_a_success(sf, client, token):
    """Not only 201 is a created record."""
    _answers_next(sf, "sobject-create", 200, {"id": RECORD_ID, "success": True, "errors": []})
    assert client.create(token, "Contact", {"LastName": "x"}) == RECORD_ID


@pytest.mark.parametrize("answer", [{"id": RECORD_ID, "success": False, "errors": []},
                                    {"id": "", "success": True, "errors": []}])
def test_a_create_answer_without_success_or_an_id_is_an_error(sf, client, token, answer):
    _answers_next(sf, "sobject-create", 201, answer)
    assert _raised(SalesforceError, client.create, token, "Contact", {"LastName": "x"}).message == \
        "Salesforce's create answer has no record id"


def test_a_create_answered_300_is_an_error(sf, client, token):
    _answers_next(sf, "sobject-create", 300, _error("MULTIPLE_CHOICES", "pick one"))
    assert _raised(SalesforceError, client.create, token, "Contact", {"LastName": "x"}).message == \
        "Salesforce answered 300 MULTIPLE_CHOICES: pick one"


def test_an_update_answered_200_is_a_success(sf, client, token):
    """Not only 204 is an updated record."""
    _answers_next(sf, "sobject-update", 200, {"id": RECORD_ID, "success": True})
    assert client.update(token, "Contact", RECORD_ID, {"LastName": "x"}) is None


def test_an_update_answered_300_is_an_error(sf, client, token):
    _answers_next(sf, "sobject-update", 300, _error("MULTIPLE_CHOICES", "pick one"))
    assert _raised(SalesforceError, client.update, token, "Contact", RECORD_ID, {"LastName": "x"}).message == \
        "Salesforce answered 300 MULTIPLE_CHOICES: pick one"


@pytest.mark.parametrize("sobject,record_id", [("Bad-Name", None), ("Contact", "003-not/alnum")])
def test_a_bad_sobject_name_or_record_id_is_refused_before_any_call(sf, client, token, sobject, record_id):
    calls = sum(sf.calls.values())
    call, args = (client.create, (token, sobject, {})) if record_id is None else \
        (client.update, (token, sobject, record_id, {}))
    assert str(_raised(ValueError, call, *args)) == "an sObject name and an alphanumeric record id are required"
    assert sum(sf.calls.values()) == calls


# --- the client's own logic, in process ---------------------------------------------------------

# Salesforce's errorCodes and the statuses each comes with (REST API guide, "Status Codes and
# Error Responses"): with another status the same code is Salesforce failing.
REFUSED = range(400, 500)
EXPECTED = {
    "INVALID_SESSION_ID": ((401,), SessionExpired),
    "REQUEST_LIMIT_EXCEEDED": ((403,), RequestLimitExceeded),
    "REQUIRED_FIELD_MISSING": (REFUSED, RecordRejected),
    "FIELD_CUSTOM_VALIDATION_EXCEPTION": (REFUSED, RecordRejected),
    "FIELD_INTEGRITY_EXCEPTION": (REFUSED, RecordRejected),
    "STRING_TOO_LONG": (REFUSED, RecordRejected),
    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST": (REFUSED, RecordRejected),
    "INVALID_FIELD_FOR_INSERT_UPDATE": (REFUSED, RecordRejected),
    "INVALID_CROSS_REFERENCE_KEY": (REFUSED, RecordNotFound),
    "ENTITY_IS_DELETED": (REFUSED, RecordNotFound),
    "INSUFFICIENT_ACCESS_OR_READONLY": (REFUSED, InsufficientAccess),
    "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY": (REFUSED, InsufficientAccess),
    "MALFORMED_QUERY": ((), SalesforceError),
}


def test_the_rest_error_table_is_the_documented_one():
    assert set(REST_ERRORS) | {"MALFORMED_QUERY"} == set(EXPECTED)


@pytest.mark.parametrize("code", sorted(EXPECTED))
@pytest.mark.parametrize("status", [400, 401, 403, 404, 500])
def test_each_rest_error_code_is_its_error_at_its_statuses_only(sender, scripted, code, status):
    """An errorCode is its error only with the statuses it comes with; else (a 500 above all) it
    is Salesforce failing. The error keeps Salesforce's status and errorCode."""
    statuses, kind = EXPECTED[code]
    expected = kind if status in statuses else SalesforceError
    sender.answer(status, _error(code, "said"))
    raised = _raised(SalesforceError, scripted.query, "token", "SELECT Id FROM Contact")
    assert type(raised) is expected and (raised.status, raised.error_code) == (status, code)
    if expected is SalesforceError:
        assert raised.message == f"Salesforce answered {status} {code}: said"


def test_an_expired_session_wins_over_a_refusal_in_the_same_answer(sender, scripted):
    """A whole call's error (the session, the org's limit) before a record's; else the answer's order."""
    sender.answer(401, _error("REQUIRED_FIELD_MISSING", "a") + _error("INVALID_SESSION_ID", "b"))
    assert type(_raised(SessionExpired, scripted.query, "t", "SELECT Id FROM Contact")) is SessionExpired
    sender.answer(400, _error("ENTITY_IS_DELETED", "gone") + _error("REQUIRED_FIELD_MISSING", "a"))
    assert _raised(RecordNotFound, scripted.create, "t", "Task", {}).message == \
        "Salesforce refused it: ENTITY_IS_DELETED: gone"


def test_an_error_body_that_is_not_salesforce_s_is_an_unexpected_body(sender, scripted):
    sender.answer(404, b"<html>no</html>")
    failed = _raised(SalesforceError, scripted.query, "t", "SELECT Id FROM Contact")
    assert (failed.message, failed.status) == ("Salesforce answered 404 with an unexpected body", 404)


@pytest.mark.parametrize("call,status,body,kind,error_code", [
    (lambda c: c.refresh("r"), 400, {"error": "invalid_grant"}, InvalidGrant, "invalid_grant"),
    (lambda c: c.exchange_code("c", REDIRECT_URI, "v"), 400, {"error": "invalid_grant"}, CodeRefused,
     "invalid_grant"),
    (lambda c: c.refresh("r"), 401, {"error": "invalid_client"}, SalesforceError, "invalid_client"),
    (lambda c: c.refresh("r"), 400, {"error": "redirect_uri_mismatch"}, SalesforceError, "redirect_uri_mismatch"),
    (lambda c: c.refresh("r"), 400, {"error": "unsupported_grant_type"}, SalesforceError, "unsupported_grant_type"),
    (lambda c: c.refresh("r"), 400, {}, SalesforceError, None),
    (lambda c: c.revoke("r"), 401, None, SalesforceError, None),
    (lambda c: c.userinfo("t"), 401, None, SessionExpired, None),
    (lambda c: c.userinfo("t"), 200, b"<html>maintenance</html>", SalesforceError, None),
    (lambda c: c.userinfo("t"), 200, ["not", "an", "object"], SalesforceError, None),
    (lambda c: c.query("t", "SELECT Id FROM Contact"), 200, b"<html>maintenance</html>", SalesforceError, None)])
def test_every_error_keeps_salesforce_s_status_and_error_code(sender, scripted, call, status, body, kind,
                                                              error_code):
    """The client's errors say what Salesforce did: its status and its OAuth error (None when it
    named none), on token refusals, failed revokes, expired sessions and answers not JSON objects."""
    sender.answer(status, body)
    raised = _raised(SalesforceError, call, scripted)
    assert (type(raised), raised.status, raised.error_code) == (kind, status, error_code)


def test_a_query_is_a_get_with_the_bearer_token_and_the_soql_in_q(sender, scripted):
    sender.answer(200, {"done": True, "records": [{"Id": "1"}, "not a record"]})
    assert scripted.query("access-1", "SELECT Id FROM Contact WHERE Name = 'A&B'") == [{"Id": "1"}]
    sent = sender.sent[0]
    assert (sent.method, sent.body, sent.headers["Authorization"]) == ("GET", None, "Bearer access-1")
    assert sent.url == (f"{ORG}/services/data/v62.0/query?"
                        + urllib.parse.urlencode({"q": "SELECT Id FROM Contact WHERE Name = 'A&B'"}))


def test_a_refresh_is_a_form_post_that_is_never_sent_twice(sender, scripted):
    """Salesforce rotates refresh tokens: the grant is not idempotent."""
    sender.answer(200, {"access_token": "a2", "id": "i", "instance_url": ORG, "refresh_token": "r2"})
    assert scripted.refresh("r1")["refresh_token"] == "r2"
    sent = sender.sent[0]
    assert (sent.method, sent.url, sent.idempotent) == ("POST", f"{ORG}/services/oauth2/token", False)
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert dict(urllib.parse.parse_qsl(sent.body.decode())) == {
        "grant_type": "refresh_token", "refresh_token": "r1", "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET}


def test_a_create_posts_json_and_an_update_patches_it(sender, scripted):
    sender.answer(201, {"id": RECORD_ID, "success": True, "errors": []})
    sender.answer(204)
    assert scripted.create("t", "Task", {"Subject": "Call"}) == RECORD_ID
    scripted.update("t", "Task", RECORD_ID, {"Subject": "Again"})
    created, updated = sender.sent
    assert (created.method, created.url, json.loads(created.body)) == (
        "POST", f"{ORG}/services/data/v62.0/sobjects/Task", {"Subject": "Call"})
    assert (updated.method, updated.url, json.loads(updated.body)) == (
        "PATCH", f"{ORG}/services/data/v62.0/sobjects/Task/{RECORD_ID}", {"Subject": "Again"})
    assert created.headers["Content-Type"] == "application/json"


def test_a_network_failure_is_a_salesforce_error_in_the_transport_s_words(sender, scripted):
    sender.replies.append(ConnectionResetError())
    failed = _raised(SalesforceError, scripted.userinfo, "t")
    assert (type(failed), failed.message, failed.status) == (
        SalesforceError, "Salesforce connection failed: reset", None)
    assert not isinstance(failed, Unreachable)
