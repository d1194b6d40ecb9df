"""The Salesforce client's REST errors: each status and errorCode is its own error class, from one
table (REST_ERRORS), in its own words; upstream trouble is a Salesforce error.

The table is tested in process through a scripted Sender; the words against the Salesforce
stand-in, where odd answers are planted with `fail_next`. What an agent is answered for each error:
tests/test_errors.py.
"""
from __future__ import annotations

import pytest

from sfdcflex.clients.errors import (CodeRefused, InsufficientAccess, InvalidGrant, RecordNotFound,
                                     RecordRejected, RequestLimitExceeded, SalesforceError, SessionExpired)
from sfdcflex.clients.salesforce import REST_ERRORS, SalesforceClient
from tests.support.errors import answered, caught
from tests.support.salesforce import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, answers_next, rest_error


def test_an_expired_session_is_session_expired(client, sf, tokens):
    sf.expire_access_tokens()
    with pytest.raises(SessionExpired):
        client.query(tokens["access_token"], "SELECT Id FROM Contact")


def test_an_expired_rest_session_is_said_in_these_words(sf, client, token):
    sf.fail_next("query", status=401)       # the stand-in's own 401 INVALID_SESSION_ID body
    assert caught(SessionExpired, client.query, token, "SELECT Id FROM Contact").message == \
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
    assert caught(RequestLimitExceeded, client.search, token, "FIND {x} RETURNING Contact(Id)").message == \
        "Salesforce refused the call: the org's daily API request limit is exceeded"


def test_a_403_for_missing_access_is_not_the_request_limit(sf, client, token):
    """Not every 403 is the request limit."""
    answers_next(sf, "query", 403, rest_error("INSUFFICIENT_ACCESS_OR_READONLY", "no access"))
    refused = caught(InsufficientAccess, client.query, token, "SELECT Id FROM Contact")
    assert (answered(refused)[0], refused.message) == (
        403, "Salesforce refused it: INSUFFICIENT_ACCESS_OR_READONLY: no access")


def test_a_malformed_query_names_salesforce_error_code(client, tokens):
    with pytest.raises(SalesforceError) as raised:
        client.query(tokens["access_token"], "SELECT FROM WHERE")
    assert answered(raised.value)[1] == "salesforce_error" and "MALFORMED_QUERY" in raised.value.message


@pytest.mark.parametrize("fault", [{"status": 500, "body": b"<html>oops</html>", "content_type": "text/html"},
                                   {"reset": True}, {"stall": 3}])
def test_upstream_trouble_is_a_salesforce_error(sf, tokens, fault):
    # the stalled call waits out the client's timeout; the others are answered at once
    client = SalesforceClient(sf.url, CLIENT_ID, CLIENT_SECRET, timeout=0.15 if "stall" in fault else 0.3)
    sf.fail_next("query", **fault)
    with pytest.raises(SalesforceError) as raised:
        client.query(tokens["access_token"], "SELECT Id FROM Contact")
    assert answered(raised.value)[0] == 502 and tokens["access_token"] not in raised.value.message


def test_a_refusal_code_in_a_500_is_salesforce_failing(sf, client, token):
    """A 500 is not taken for the agent's refused data."""
    answers_next(sf, "sobject-create", 500, rest_error("REQUIRED_FIELD_MISSING", "Required fields are missing"))
    failed = caught(SalesforceError, client.create, token, "Contact", {"LastName": "x"})
    assert type(failed) is SalesforceError and failed.status == 500
    assert (answered(failed)[0], failed.message) == (502, "Salesforce answered 500 REQUIRED_FIELD_MISSING: "
                                                          "Required fields are missing")


@pytest.mark.parametrize("fields,named", [
    (None, ""), ([], ""), (["LastName", "Email"], " (fields: LastName, Email)"),
    (["A", "B", "C", "D", "E", "F"], " (fields: A, B, C, D, E)"),
    (["X" * 100], f" (fields: {'X' * 80})")])
def test_a_refusal_names_at_most_five_fields_of_80_characters(sf, client, token, fields, named):
    answers_next(sf, "sobject-create", 400, rest_error("REQUIRED_FIELD_MISSING", "Required fields are missing",
                                                    **({} if fields is None else {"fields": fields})))
    refused = caught(RecordRejected, client.create, token, "Contact", {"FirstName": "x"})
    assert refused.message == f"Salesforce refused it: REQUIRED_FIELD_MISSING: Required fields are missing{named}"


@pytest.mark.parametrize("body,said", [
    ([{"message": "no code given"}], "Salesforce answered 400 error: no code given"),
    ([{"errorCode": "ODD_CODE"}], "Salesforce answered 400 ODD_CODE: "),
    ({"errorCode": "ODD_CODE", "message": "one object, not an array"},
     "Salesforce answered 400 ODD_CODE: one object, not an array")])
def test_an_unknown_rest_error_is_named_as_given(sf, client, token, body, said):
    """One object is read as one error; a missing errorCode is said "error", a missing message ""."""
    answers_next(sf, "query", 400, body)
    assert caught(SalesforceError, client.query, token, "SELECT Id FROM Contact").message == said


def test_a_rest_300_is_an_error(sf, client, token):
    """A 300 is not read as the answer."""
    answers_next(sf, "query", 300, rest_error("MULTIPLE_CHOICES", "pick one"))
    assert caught(SalesforceError, client.query, token, "SELECT Id FROM Contact").message == \
        "Salesforce answered 300 MULTIPLE_CHOICES: pick one"


def test_a_rest_answer_that_is_not_json_is_said_so(sf, client, token):
    sf.fail_next("query", status=200, body=b"<html>maintenance</html>", content_type="text/html")
    assert caught(SalesforceError, client.query, token, "SELECT Id FROM Contact").message == \
        "Salesforce answered 200 with a body that is not JSON"


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
    sender.answer(status, rest_error(code, "said"))
    raised = caught(SalesforceError, scripted.query, "token", "SELECT Id FROM Contact")
    assert type(raised) is expected and (raised.status, raised.error_code) == (status, code)
    if expected is SalesforceError:
        assert raised.message == f"Salesforce answered {status} {code}: said"


def test_an_expired_session_wins_over_a_refusal_in_the_same_answer(sender, scripted):
    """A whole call's error (the session, the org's limit) before a record's; else the answer's order."""
    sender.answer(401, rest_error("REQUIRED_FIELD_MISSING", "a") + rest_error("INVALID_SESSION_ID", "b"))
    assert type(caught(SessionExpired, scripted.query, "t", "SELECT Id FROM Contact")) is SessionExpired
    sender.answer(400, rest_error("ENTITY_IS_DELETED", "gone") + rest_error("REQUIRED_FIELD_MISSING", "a"))
    assert caught(RecordNotFound, scripted.create, "t", "Task", {}).message == \
        "Salesforce refused it: ENTITY_IS_DELETED: gone"


def test_an_error_body_that_is_not_salesforce_s_is_an_unexpected_body(sender, scripted):
    sender.answer(404, b"<html>no</html>")
    failed = caught(SalesforceError, scripted.query, "t", "SELECT Id FROM Contact")
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
    raised = caught(SalesforceError, call, scripted)
    assert (type(raised), raised.status, raised.error_code) == (kind, status, error_code)
