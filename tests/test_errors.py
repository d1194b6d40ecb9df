"""What an agent is answered when a client fails: sfdcflex/errors.py's one table, and the runtime's hook."""
from __future__ import annotations

import inspect
import json

import pytest

from sfdcflex.clients import errors as client_errors
from sfdcflex.clients.errors import (CodeRefused, DocumentExists, DocumentNotFound, IamBusy,
                                     IamCredentialsRefused, IamError, IamUnavailable, InsufficientAccess,
                                     InvalidGrant, MapItemExists, NotJson, RecordNotFound, RecordRejected,
                                     RequestLimitExceeded, RevisionMismatch, SalesforceError, SessionExpired,
                                     SyncCredentialsRefused, SyncError, SyncUnavailable, TokenMissing,
                                     TokenRefused, Unreachable, UpstreamError)
from sfdcflex.errors import NotLinked, answer_for, answer_for_failure
from sfdcflex.runtime.app import App, Request
from sfdcflex.runtime.errors import Forbidden
from sfdcflex.runtime.routes import build_routes, discover_functions

# Every client error, the status and code an agent sees for it: these are the answers the
# functions gave before the clients had errors of their own, and must stay so.
TABLE = [
    (SessionExpired, 502, "salesforce_session_expired"),
    (InvalidGrant, 404, "not_linked"),
    (CodeRefused, 400, "invalid_code"),
    (RequestLimitExceeded, 502, "salesforce_request_limit"),
    (RecordRejected, 422, "salesforce_rejected"),
    (RecordNotFound, 404, "salesforce_record_not_found"),
    (InsufficientAccess, 403, "salesforce_insufficient_access"),
    (SalesforceError, 502, "salesforce_error"),
    (TokenMissing, 400, "missing_token"),
    (TokenRefused, 403, "invalid_token"),
    (IamBusy, 503, "iam_busy"),
    (IamUnavailable, 502, "iam_unavailable"),
    (IamCredentialsRefused, 502, "iam_credentials_rejected"),
    (IamError, 502, "iam_unavailable"),
    (SyncError, 502, "sync_error"),
    (SyncUnavailable, 502, "sync_unavailable"),
    (SyncCredentialsRefused, 502, "sync_error"),
    (DocumentExists, 502, "sync_error"),
    (RevisionMismatch, 502, "sync_error"),
    (DocumentNotFound, 502, "sync_error"),
    (MapItemExists, 502, "sync_error"),
    (Unreachable, 502, "upstream_error"),
    (NotJson, 502, "upstream_error"),
    (UpstreamError, 502, "upstream_error"),
]


@pytest.mark.parametrize("kind,status,code", TABLE)
def test_each_client_error_has_its_status_and_code(kind, status, code):
    answer = answer_for(kind("what the client said", status=418, error_code="X"))
    assert (answer.status, answer.code) == (status, code)
    assert answer.body() == {"error": code, "message": "what the client said"}
    assert answer.headers == {}   # the service's own status and code are not this server's answer


def test_every_client_error_is_in_the_table():
    defined = {cls for _, cls in inspect.getmembers(client_errors, inspect.isclass)
               if issubclass(cls, UpstreamError)}
    assert defined == {kind for kind, _, _ in TABLE}


def test_a_dead_grant_is_answered_as_a_link_that_is_gone():
    assert isinstance(answer_for(InvalidGrant("connect Salesforce again")), NotLinked)


def test_a_retry_hint_becomes_retry_after():
    assert answer_for(IamBusy("too many at once", retry_after=1)).headers == {"Retry-After": "1"}
    assert answer_for(SyncUnavailable("kept failing", retry_after=2.5)).headers == {"Retry-After": "2.5"}


def test_an_http_error_is_its_own_answer():
    error = Forbidden("not yours", code="identity_mismatch")
    assert answer_for(error) is error


def test_the_runtime_hook_answers_client_errors_only():
    assert answer_for_failure(RecordRejected("refused")).status == 422
    assert answer_for_failure(ValueError("a bug")) is None


# --- the runtime renders it ----------------------------------------------------------------------

@pytest.fixture
def app_with(tmp_path):
    """An App serving one function that lets a client's error escape, with or without the hook."""
    (tmp_path / "escapes.py").write_text(
        "from sfdcflex.clients.errors import RecordRejected\n\n"
        "def handler(context, event, callback):\n"
        "    raise RecordRejected('Salesforce refused it: STRING_TOO_LONG: too long', status=400)\n")
    found = discover_functions(tmp_path)
    made: list[App] = []

    def make(**options) -> App:
        made.append(App(build_routes(found), found, **options))
        return made[-1]

    yield make
    for app in made:
        app.close()


def _post(app: App):
    return app.dispatch(Request("POST", "/escapes", [("Host", "localhost")]), lambda reply: None)


def test_a_client_error_a_function_lets_escape_is_answered_from_the_table(app_with):
    reply = _post(app_with(errors=answer_for_failure))
    assert reply.status == 422
    assert json.loads(reply.body) == {"error": "salesforce_rejected",
                                      "message": "Salesforce refused it: STRING_TOO_LONG: too long"}


def test_without_the_hook_the_runtime_knows_only_http_errors(app_with, caplog):
    reply = _post(app_with())
    assert reply.status == 500 and json.loads(reply.body)["error"] == "internal_error"
    assert "/escapes failed" in caplog.text
