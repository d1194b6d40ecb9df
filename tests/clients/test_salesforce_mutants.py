"""Salesforce client behaviour that mutation testing found unchecked (mutmut 3.8, first run of
clients/salesforce.py): the words of each error, which statuses count as success, where paging
stops, what a create answer must hold, which settings a bad URL names.

Each test names the surviving mutants it kills; the equivalent ones are listed in README's
reliability report. One Salesforce stand-in and one client serve the whole module; odd answers
are planted with the stand-in's `fail_next`, so every call still goes over a real socket.
"""
from __future__ import annotations

import json
import socket

import pytest

from sfdcflex.clients.salesforce import (InsufficientAccess, InvalidGrant, RecordRejected,
                                         RequestLimitExceeded, SalesforceClient, SalesforceError,
                                         SessionExpired, soql_quote, sosl_escape)
from tests.support.transports import TimeoutsSeen
from sfdcflex.demo.standins import SalesforceStandIn
from sfdcflex.runtime.errors import BadRequest, ConfigError

CLIENT_ID, CLIENT_SECRET = "demo-client-id", "demo-client-secret"
USERNAME = "ada@example.com"
REDIRECT_URI = "http://127.0.0.1:3000/oauth-callback"
RECORD_ID = "003000000000001AAA"


@pytest.fixture(scope="module")
def sf():
    with SalesforceStandIn() as standin:
        standin.add_user(USERNAME, "Ada Lovelace")
        yield standin


@pytest.fixture(scope="module")
def client(sf):
    return SalesforceClient(sf.url, CLIENT_ID, CLIENT_SECRET, timeout=2.0)


@pytest.fixture(scope="module")
def token(sf):
    return sf.issue_tokens(USERNAME)["access_token"]


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


# --- the helpers take only strings -----------------------------------------------------------------

@pytest.mark.parametrize("helper,words", [(soql_quote, "soql_quote takes a str"),
                                          (sosl_escape, "sosl_escape takes a str")])
def test_the_quoting_helpers_refuse_a_non_string_in_these_words(helper, words):
    """soql_quote 2-4, sosl_escape 2-4."""
    assert str(_raised(TypeError, helper, 42)) == words


# --- settings ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("urls,setting", [(("http://example.com", None), "SFDC_INSTANCE_URL"),
                                          (("https://example.my.salesforce.com", "http://example.com"),
                                           "SFDC_LOGIN_URL")])
def test_a_plain_http_url_is_refused_naming_its_setting(urls, setting):
    """__init__ 4, 8, 9, 13, 17, 18 (the setting's name in the start-up error)."""
    instance_url, login_url = urls
    refused = _raised(ConfigError, SalesforceClient, instance_url, CLIENT_ID, CLIENT_SECRET, login_url=login_url)
    assert str(refused) == (f"{setting} must use https:// (http:// is allowed only for "
                            "localhost / 127.0.0.1 / ::1)")


def test_a_salesforce_call_may_take_eight_seconds_by_default(sf, token):
    """__init__ 2 (the default timeout 9 s instead of 8 s)."""
    transport = TimeoutsSeen()
    try:
        info = SalesforceClient(sf.url, CLIENT_ID, CLIENT_SECRET, transport=transport).userinfo(token)
    finally:
        transport.close()
    assert info["preferred_username"] == USERNAME and transport.timeouts == [8.0]


def test_a_network_failure_names_salesforce():
    """_call 2 (the service's name in the failure's words). Nothing listens on the port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = SalesforceClient(f"http://127.0.0.1:{port}", CLIENT_ID, CLIENT_SECRET, timeout=1.0)
    assert _raised(SalesforceError, client.userinfo, "any-token").message == \
        "Salesforce connection failed: refused"


# --- the token endpoint -------------------------------------------------------------------------------

def test_a_token_answer_without_a_refresh_token_says_which_scope_to_allow(sf, client):
    """exchange_code 30-35."""
    _answers_next(sf, "token", 200, {"access_token": "a", "id": "i", "instance_url": sf.url})
    assert _raised(SalesforceError, client.exchange_code, "code", REDIRECT_URI, "verifier").message == (
        "Salesforce gave no refresh token: allow the refresh_token scope in the connected app's OAuth policies")


def test_a_token_answer_without_an_access_token_is_refused_in_these_words(sf, client):
    """_token_request 26, 27."""
    _answers_next(sf, "token", 200, {"id": "i", "instance_url": sf.url})
    assert _raised(SalesforceError, client.refresh, "refresh-token").message == \
        "Salesforce's token answer lacks access_token, id or instance_url"


def test_a_300_from_the_token_endpoint_is_an_error_naming_status_and_error(sf, client):
    """_token_request 14, 15 (a 300 taken for tokens), 29 (the status left out)."""
    _answers_next(sf, "token", 300, {"error": "odd_error", "error_description": "odd words",
                                     "access_token": "a", "id": "i", "instance_url": sf.url})
    assert _raised(SalesforceError, client.refresh, "refresh-token").message == \
        "Salesforce's token endpoint answered 300 odd_error: odd words"


def test_a_token_error_without_error_fields_says_error(sf, client):
    """_token_error 4, 6, 9, 13, 15, 18, 71, 72 (the defaults of error and error_description)."""
    _answers_next(sf, "token", 400, {})
    assert _raised(SalesforceError, client.refresh, "refresh-token").message == \
        "Salesforce's token endpoint answered 400 error: "


@pytest.mark.parametrize("description,said", [("expired access/refresh token", "expired access/refresh token"),
                                              (None, "invalid_grant")])
def test_a_refused_refresh_says_why_and_what_to_do(sf, client, description, said):
    """_token_error 24-29."""
    _answers_next(sf, "token", 400, {"error": "invalid_grant", "error_description": description} if description
                  else {"error": "invalid_grant"})
    assert _raised(InvalidGrant, client.refresh, "refresh-token").message == \
        f"Salesforce no longer accepts this agent's link ({said}): connect Salesforce again"


def test_a_refused_code_says_what_to_do(sf, client):
    """_token_error 37-42."""
    _answers_next(sf, "token", 400, {"error": "invalid_grant", "error_description": "expired authorization code"})
    refused = _raised(BadRequest, client.exchange_code, "code", REDIRECT_URI, "verifier")
    assert (refused.code, refused.message) == (
        "invalid_code", "Salesforce refused the authorization code (used or expired): connect Salesforce again")


@pytest.mark.parametrize("error", ["invalid_client", "invalid_client_id", "invalid_client_credentials"])
def test_refused_app_credentials_name_the_settings(sf, client, error):
    """_token_error 50, 51 (invalid_client_credentials not recognised), 53-58 (the words)."""
    _answers_next(sf, "token", 400, {"error": error, "error_description": "client secret invalid"})
    assert _raised(SalesforceError, client.refresh, "refresh-token").message == \
        "Salesforce refused this app's credentials: check SFDC_CLIENT_ID and SFDC_CLIENT_SECRET"


def test_a_redirect_uri_mismatch_names_the_callback(sf, client):
    """_token_error 63, 66-68."""
    _answers_next(sf, "token", 400, {"error": "redirect_uri_mismatch", "error_description": "redirect_uri must match"})
    assert _raised(SalesforceError, client.exchange_code, "code", REDIRECT_URI, "verifier").message == (
        "Salesforce refused the redirect URI: the connected app's callback URL must match PUBLIC_URL's oauth-callback")


# --- revoke and userinfo ----------------------------------------------------------------------------------

def test_a_revoke_answered_401_is_an_error_naming_the_status(sf, client):
    """revoke 12 (only 5xx taken for failure), 18 (the words)."""
    sf.fail_next("revoke", status=401)
    assert _raised(SalesforceError, client.revoke, "refresh-token").message == \
        "Salesforce could not revoke the token: it answered 401"


def test_an_expired_userinfo_token_is_said_in_these_words(sf, client):
    """userinfo 23-26."""
    assert _raised(SessionExpired, client.userinfo, "not-a-live-token").message == "The Salesforce session expired"


def test_a_userinfo_403_without_bad_oauth_token_is_not_an_expiry(sf, client, token):
    """userinfo 16 (every 403 taken for an expired session)."""
    _answers_next(sf, "userinfo", 403, _error("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."))
    assert _raised(RequestLimitExceeded, client.userinfo, token).message == \
        "Salesforce refused the call: the org's daily API request limit is exceeded"


def test_a_userinfo_300_is_an_error(sf, client, token):
    """userinfo 30, 31 (a 300 read as the user)."""
    _answers_next(sf, "userinfo", 300, _error("MULTIPLE_CHOICES", "pick one"))
    assert _raised(SalesforceError, client.userinfo, token).message == "Salesforce answered 300 MULTIPLE_CHOICES: pick one"


# --- REST errors ---------------------------------------------------------------------------------------------

def test_an_expired_rest_session_is_said_in_these_words(sf, client, token):
    """_raise_for_rest 10-13."""
    sf.fail_next("query", status=401)       # the stand-in's own 401 INVALID_SESSION_ID body
    assert _raised(SessionExpired, client.query, token, "SELECT Id FROM Contact").message == \
        "The Salesforce session expired"


def test_the_request_limit_is_said_in_these_words(sf, client, token):
    """_raise_for_rest 21-25."""
    sf.fail_next("search", status=403)      # the stand-in's own 403 REQUEST_LIMIT_EXCEEDED body
    assert _raised(RequestLimitExceeded, client.search, token, "FIND {x} RETURNING Contact(Id)").message == \
        "Salesforce refused the call: the org's daily API request limit is exceeded"


def test_a_403_for_missing_access_is_not_the_request_limit(sf, client, token):
    """_raise_for_rest 14 (every 403 taken for the request limit)."""
    _answers_next(sf, "query", 403, _error("INSUFFICIENT_ACCESS_OR_READONLY", "no access"))
    refused = _raised(InsufficientAccess, client.query, token, "SELECT Id FROM Contact")
    assert (refused.status, refused.message) == (403, "Salesforce refused it: INSUFFICIENT_ACCESS_OR_READONLY: no access")


def test_a_refusal_code_in_a_500_is_salesforce_failing(sf, client, token):
    """_raise_for_rest 35, 36 (a 500 taken for the agent's refused data)."""
    _answers_next(sf, "sobject-create", 500, _error("REQUIRED_FIELD_MISSING", "Required fields are missing"))
    failed = _raised(SalesforceError, client.create, token, "Contact", {"LastName": "x"})
    assert (failed.status, failed.message) == (502, "Salesforce answered 500 REQUIRED_FIELD_MISSING: "
                                                    "Required fields are missing")


@pytest.mark.parametrize("fields,named", [
    (None, ""), ([], ""), (["LastName", "Email"], " (fields: LastName, Email)"),
    (["A", "B", "C", "D", "E", "F"], " (fields: A, B, C, D, E)"),
    (["X" * 100], f" (fields: {'X' * 80})")])
def test_a_refusal_names_at_most_five_fields_of_80_characters(sf, client, token, fields, named):
    """_raise_for_rest 41, 43, 44 (the fields part), _fields_of 9, 10 (its bounds)."""
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
    """_rest_errors 4 (an object not read as one error), 7, 9, 13, 16, 18, 21 (the defaults of
    errorCode and message), _raise_for_rest 50, 51 (the word for a missing code)."""
    _answers_next(sf, "query", 400, body)
    assert _raised(SalesforceError, client.query, token, "SELECT Id FROM Contact").message == said


def test_a_rest_300_is_an_error(sf, client, token):
    """_rest_get 16, 17 (a 300 read as the answer)."""
    _answers_next(sf, "query", 300, _error("MULTIPLE_CHOICES", "pick one"))
    assert _raised(SalesforceError, client.query, token, "SELECT Id FROM Contact").message == \
        "Salesforce answered 300 MULTIPLE_CHOICES: pick one"


def test_a_rest_answer_that_is_not_json_is_said_so(sf, client, token):
    """_rest_get 19."""
    sf.fail_next("query", status=200, body=b"<html>maintenance</html>", content_type="text/html")
    assert _raised(SalesforceError, client.query, token, "SELECT Id FROM Contact").message == \
        "Salesforce answered 200 with a body that is not JSON"


# --- query paging, search -----------------------------------------------------------------------------------

def test_a_query_answer_without_records_is_said_so(sf, client, token):
    """query 16-19."""
    _answers_next(sf, "query", 200, {"totalSize": 0, "done": True})
    assert _raised(SalesforceError, client.query, token, "SELECT Id FROM Contact").message == \
        "Salesforce's query answer has no records list"


@pytest.mark.parametrize("page", [
    {"done": True, "nextRecordsUrl": "/services/data/v62.0/query/01g000000000001-2000"},
    {"nextRecordsUrl": "/services/data/v62.0/query/01g000000000001-2000"},
    {"done": False, "nextRecordsUrl": "/data/v62.0/query/01g000000000001-2000"}])
def test_paging_stops_when_done_or_unsaid_or_when_the_next_page_is_not_salesforce_s(sf, client, token, page):
    """query 28, 29 (the stop condition's and/or), 31-33, 36 (a missing `done` read as not done)."""
    _answers_next(sf, "query", 200, {"totalSize": 9, "records": [{"Name": "First Page"}], **page})
    calls = sf.calls["query"]
    assert client.query(token, "SELECT Name FROM Contact") == [{"Name": "First Page"}]
    assert sf.calls["query"] == calls + 1


def test_a_search_answer_without_search_records_is_said_so(sf, client, token):
    """search 19-22."""
    _answers_next(sf, "search", 200, {"records": []})
    assert _raised(SalesforceError, client.search, token, "FIND {x} RETURNING Contact(Id)").message == \
        "Salesforce's search answer has no searchRecords list"


# --- writes ----------------------------------------------------------------------------------------------------

def test_a_create_answered_200_is_a_success(sf, client, token):
    """create 17, 18 (only 201 taken for success)."""
    _answers_next(sf, "sobject-create", 200, {"id": RECORD_ID, "success": True, "errors": []})
    assert client.create(token, "Contact", {"LastName": "x"}) == RECORD_ID


@pytest.mark.parametrize("answer", [{"id": RECORD_ID, "success": False, "errors": []},
                                    {"id": "", "success": True, "errors": []}])
def test_a_create_answer_without_success_or_an_id_is_an_error(sf, client, token, answer):
    """create 28, 29 (the conditions' and/or), 30-32 (`success` not read), 37-40 (the words)."""
    _answers_next(sf, "sobject-create", 201, answer)
    assert _raised(SalesforceError, client.create, token, "Contact", {"LastName": "x"}).message == \
        "Salesforce's create answer has no record id"


def test_a_create_answered_300_is_an_error(sf, client, token):
    """create 19, 20 (a 300 read as the create answer)."""
    _answers_next(sf, "sobject-create", 300, _error("MULTIPLE_CHOICES", "pick one"))
    assert _raised(SalesforceError, client.create, token, "Contact", {"LastName": "x"}).message == \
        "Salesforce answered 300 MULTIPLE_CHOICES: pick one"


def test_an_update_answered_200_is_a_success(sf, client, token):
    """update 20, 21 (only 201-299 taken for success)."""
    _answers_next(sf, "sobject-update", 200, {"id": RECORD_ID, "success": True})
    assert client.update(token, "Contact", RECORD_ID, {"LastName": "x"}) is None


def test_an_update_answered_300_is_an_error(sf, client, token):
    """update 22, 23 (a 300 taken for success)."""
    _answers_next(sf, "sobject-update", 300, _error("MULTIPLE_CHOICES", "pick one"))
    assert _raised(SalesforceError, client.update, token, "Contact", RECORD_ID, {"LastName": "x"}).message == \
        "Salesforce answered 300 MULTIPLE_CHOICES: pick one"


@pytest.mark.parametrize("sobject,record_id", [("Bad-Name", None), ("Contact", "003-not/alnum")])
def test_a_bad_sobject_name_or_record_id_is_refused_before_any_call(sf, client, token, sobject, record_id):
    """_sobject_url 1 (a bad name passed when no id is given), 6-9 (the words)."""
    calls = sum(sf.calls.values())
    call, args = (client.create, (token, sobject, {})) if record_id is None else \
        (client.update, (token, sobject, record_id, {}))
    assert str(_raised(ValueError, call, *args)) == "an sObject name and an alphanumeric record id are required"
    assert sum(sf.calls.values()) == calls
