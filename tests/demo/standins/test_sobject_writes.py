"""Record writes: SalesforceClient.create/update against the stand-in's /sobjects; each refusal's class."""
from __future__ import annotations

import http.client
import json
import urllib.parse

import pytest

from sfdcflex.clients.salesforce import (InsufficientAccess, RecordNotFound, RecordRejected,
                                         SalesforceClient, SalesforceError, SessionExpired)
from sfdcflex.demo.standins import SalesforceStandIn

from tests.support.record_pages import log_in, page

API = "/services/data/v62.0"


@pytest.fixture()
def org():
    with SalesforceStandIn() as sf:
        sf.alice = sf.add_user("alice@sfdcflex.demo", "Alice Johnson")["user_id"]
        acme = sf.add_account("Acme")
        sf.jane = sf.add_contact("Jane Cooper", account_id=acme, phone="(415) 555-0101")
        sf.acme = acme
        sf.lead = sf.add_lead("Grace Prospect", "Hopper Industries", email="grace@hopper.example")
        token = sf.issue_tokens("alice@sfdcflex.demo")["access_token"]
        client = SalesforceClient(sf.url, sf.client_id, sf.client_secret)
        yield sf, client, token


def _raw(sf, method: str, path: str, body: bytes, token: str) -> tuple[int, dict, bytes]:
    parts = urllib.parse.urlsplit(sf.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        connection.request(method, path, body, {"Authorization": f"Bearer {token}",
                                                "Content-Type": "application/json"})
        reply = connection.getresponse()
        return reply.status, dict(reply.getheaders()), reply.read()
    finally:
        connection.close()


def test_create_answers_201_with_the_id_and_update_204(org):
    sf, client, token = org
    status, headers, body = _raw(sf, "POST", f"{API}/sobjects/Task/",
                                 json.dumps({"Subject": "Call", "WhoId": sf.jane}).encode(), token)
    answer = json.loads(body)
    assert status == 201 and answer["success"] is True and answer["errors"] == []
    assert answer["id"].startswith("00T") and len(answer["id"]) == 18
    assert headers["Location"] == f"{API}/sobjects/Task/{answer['id']}"
    status, _, body = _raw(sf, "PATCH", f"{API}/sobjects/Task/{answer['id']}",
                           b'{"Description": "notes"}', token)
    assert (status, body) == (204, b"")
    task = sf.org.get("Task", answer["id"])
    assert (task["Description"], task["Status"], task["OwnerId"]) == ("notes", "Not Started", sf.alice)


def test_client_create_and_update(org):
    sf, client, token = org
    task_id = client.create(token, "Task", {"Subject": "Call", "WhoId": sf.jane, "WhatId": sf.acme,
                                            "TaskSubtype": "Call", "CallDurationInSeconds": 12})
    client.update(token, "Task", task_id, {"CallDisposition": "Resolved"})
    task = sf.org.get("Task", task_id)
    assert (task["WhoId"], task["WhatId"], task["CallDisposition"]) == (sf.jane, sf.acme, "Resolved")
    assert client.record_url("Task", task_id) == f"{sf.url}/lightning/r/Task/{task_id}/view"
    assert (sf.calls["sobject-create"], sf.calls["sobject-update"]) == (1, 1)


@pytest.mark.parametrize("fields,error,code", [
    ({"Subject": "s" * 256}, RecordRejected, "STRING_TOO_LONG"),
    ({"CallType": "Sideways"}, RecordRejected, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
    ({"WhoId": "0035e0000000000AAA"}, RecordNotFound, "INVALID_CROSS_REFERENCE_KEY"),
    ({"WhoId": "0015e0000000001AAA"}, RecordRejected, "FIELD_INTEGRITY_EXCEPTION"),
    ({"WhoId": "LEAD", "WhatId": "ACME"}, RecordRejected, "FIELD_INTEGRITY_EXCEPTION"),
    ({"OwnerId": "0055e0000000001AAA"}, RecordRejected, "INVALID_FIELD_FOR_INSERT_UPDATE"),
    ({"Id": "00T5e0000000001AAA"}, SalesforceError, "INVALID_FIELD"),
    ({"Nonsense__c": 1}, SalesforceError, "INVALID_FIELD"),
    ({"CallDurationInSeconds": "long"}, SalesforceError, "JSON_PARSER_ERROR"),
])
def test_each_refusal_has_salesforces_shape_and_its_class(org, fields, error, code):
    sf, client, token = org
    fields = {name: {"LEAD": sf.lead, "ACME": sf.acme}.get(value, value) for name, value in fields.items()}
    status, _, body = _raw(sf, "POST", f"{API}/sobjects/Task", json.dumps(fields).encode(), token)
    [item] = json.loads(body)
    assert status == 400 and item["errorCode"] == code and item["message"]
    assert isinstance(item["fields"], list)
    with pytest.raises(error) as raised:
        client.create(token, "Task", fields)
    assert code in raised.value.message
    assert sf.org.all("Task") == []


def test_org_rules_refuse_with_their_codes(org):
    sf, client, token = org
    sf.writes.rules.required["Task"] = {"CallDisposition"}
    missing = r"REQUIRED_FIELD_MISSING.*\[CallDisposition\].*fields: CallDisposition"
    with pytest.raises(RecordRejected, match=missing):
        client.create(token, "Task", {"Subject": "Call"})
    sf.writes.rules.required.clear()
    banned = ("Task", lambda task: task.get("Subject") == "x", "Subject x is banned")
    sf.writes.rules.validation_rules.append(banned)
    with pytest.raises(RecordRejected, match="FIELD_CUSTOM_VALIDATION_EXCEPTION: Subject x is banned"):
        client.create(token, "Task", {"Subject": "x"})
    sf.writes.rules.hidden.add((sf.alice, sf.jane))
    with pytest.raises(InsufficientAccess, match="INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY"):
        client.create(token, "Task", {"WhoId": sf.jane})
    sf.writes.rules.denied.add((sf.alice, "create", "Task"))
    with pytest.raises(InsufficientAccess, match="INSUFFICIENT_ACCESS_OR_READONLY"):
        client.create(token, "Task", {"Subject": "Call"})
    assert InsufficientAccess.status == 403 and RecordRejected.status == 422 and RecordNotFound.status == 404


def test_update_refuses_create_only_fields_and_unknown_records(org):
    sf, client, token = org
    task_id = client.create(token, "Task", {"Subject": "Call", "TaskSubtype": "Call"})
    with pytest.raises(RecordRejected, match="INVALID_FIELD_FOR_INSERT_UPDATE.*TaskSubtype"):
        client.update(token, "Task", task_id, {"TaskSubtype": "Email"})
    with pytest.raises(SalesforceError, match="404 NOT_FOUND"):
        client.update(token, "Task", "00T5e0000000zzzAAA", {"Subject": "x"})


def test_writes_need_a_live_session_and_a_known_object(org):
    sf, client, token = org
    sf.expire_access_tokens()
    with pytest.raises(SessionExpired):
        client.create(token, "Task", {"Subject": "Call"})
    status, _, body = _raw(sf, "POST", f"{API}/sobjects/Opportunity", b"{}",
                           sf.issue_tokens("alice@sfdcflex.demo")["access_token"])
    assert status == 404 and json.loads(body)[0]["errorCode"] == "NOT_FOUND"


def test_tasks_are_queryable_by_call_object_and_shown_on_the_record_page(org):
    sf, client, token = org
    task_id = client.create(token, "Task", {"Subject": "Inbound call", "WhoId": sf.jane,
                                            "CallObject": "CA' quoted", "Description": "<b>hi</b>"})
    rows = client.query(token, "SELECT Id, WhoId FROM Task WHERE CallObject = 'CA\\' quoted'")
    assert [(r["Id"], r["WhoId"]) for r in rows] == [(task_id, sf.jane)]
    # A browser logged in as the user sees the Task on the Contact's page, its notes escaped.
    cookie, _ = log_in(sf, "alice@sfdcflex.demo")
    status, _, shown = page(sf, f"/lightning/r/Contact/{sf.jane}/view", cookie)
    assert status == 200 and "Inbound call" in shown and "&lt;b&gt;hi&lt;/b&gt;" in shown
    assert "<b>hi</b>" not in shown
    assert page(sf, "/lightning/r/Contact/0035e0000000zzzAAA/view", cookie)[0] == 404
