"""The Salesforce client's record writes: which answers to a create or an update are a success,
and the sObject names and record ids it refuses before any call."""
from __future__ import annotations

import pytest

from sfdcflex.clients.errors import SalesforceError
from tests.support.errors import caught
from tests.support.salesforce import RECORD_ID, answers_next, rest_error


def test_a_create_answered_200_is_a_success(sf, client, token):
    """Not only 201 is a created record."""
    answers_next(sf, "sobject-create", 200, {"id": RECORD_ID, "success": True, "errors": []})
    assert client.create(token, "Contact", {"LastName": "x"}) == RECORD_ID


@pytest.mark.parametrize("answer", [{"id": RECORD_ID, "success": False, "errors": []},
                                    {"id": "", "success": True, "errors": []}])
def test_a_create_answer_without_success_or_an_id_is_an_error(sf, client, token, answer):
    answers_next(sf, "sobject-create", 201, answer)
    assert caught(SalesforceError, client.create, token, "Contact", {"LastName": "x"}).message == \
        "Salesforce's create answer has no record id"


def test_a_create_answered_300_is_an_error(sf, client, token):
    answers_next(sf, "sobject-create", 300, rest_error("MULTIPLE_CHOICES", "pick one"))
    assert caught(SalesforceError, client.create, token, "Contact", {"LastName": "x"}).message == \
        "Salesforce answered 300 MULTIPLE_CHOICES: pick one"


def test_an_update_answered_200_is_a_success(sf, client, token):
    """Not only 204 is an updated record."""
    answers_next(sf, "sobject-update", 200, {"id": RECORD_ID, "success": True})
    assert client.update(token, "Contact", RECORD_ID, {"LastName": "x"}) is None


def test_an_update_answered_300_is_an_error(sf, client, token):
    answers_next(sf, "sobject-update", 300, rest_error("MULTIPLE_CHOICES", "pick one"))
    assert caught(SalesforceError, client.update, token, "Contact", RECORD_ID, {"LastName": "x"}).message == \
        "Salesforce answered 300 MULTIPLE_CHOICES: pick one"


@pytest.mark.parametrize("sobject,record_id", [("Bad-Name", None), ("Contact", "003-not/alnum")])
def test_a_bad_sobject_name_or_record_id_is_refused_before_any_call(sf, client, token, sobject, record_id):
    calls = sum(sf.calls.values())
    call, args = (client.create, (token, sobject, {})) if record_id is None else \
        (client.update, (token, sobject, record_id, {}))
    assert str(caught(ValueError, call, *args)) == "an sObject name and an alphanumeric record id are required"
    assert sum(sf.calls.values()) == calls
