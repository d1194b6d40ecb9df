"""The Twilio Sync Documents client: CRUD, revisions, retries, Map items.

Against the Sync stand-in for the wire; its error table and what it sends in process, through a
scripted Sender. What an agent is answered for each error: tests/test_errors.py.
"""
from __future__ import annotations

import json
import urllib.parse

import pytest

from sfdcflex.clients.errors import (DocumentExists, RevisionMismatch, SyncCredentialsRefused, SyncError,
                                     SyncUnavailable)
from sfdcflex.clients.sync import SyncClient
from sfdcflex.demo.standins import SyncStandIn
from sfdcflex.demo.standins.twilio_api import twilio_error
from sfdcflex.errors import answer_for
from tests.support.senders import ScriptedSender

ACCOUNT_SID = "AC" + "2" * 32
AUTH_TOKEN = "sync-test-auth-token"
SERVICE_SID = "IS" + "3" * 32
NAME = "ada.flex@example.com"


class SlowingSyncStandIn(SyncStandIn):
    """Sync that asks for a long Retry-After on injected 429s, like Twilio's rate limiter."""

    def fault_response(self, name, status):
        return twilio_error(status, headers={"Retry-After": "30"} if status == 429 else None)


@pytest.fixture
def sync():
    with SyncStandIn(ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID) as standin:
        yield standin


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(sync, sleeps):
    return SyncClient(sync.url, SERVICE_SID, ACCOUNT_SID, AUTH_TOKEN, timeout=1.0, sleep=sleeps.append)


def test_create_fetch_update_delete(client, sync):
    created = client.create_document(NAME, {"access_token": "a1", "refresh_token": "r1"})
    assert created["unique_name"] == NAME and created["data"] == {"access_token": "a1", "refresh_token": "r1"}
    assert client.fetch_document(NAME)["revision"] == created["revision"]
    updated = client.update_document(NAME, {"access_token": "a2", "refresh_token": "r2"},
                                     if_match=created["revision"])
    assert updated["revision"] != created["revision"]
    assert sync.documents[NAME]["data"] == {"access_token": "a2", "refresh_token": "r2"}
    assert client.delete_document(NAME) is True
    assert client.fetch_document(NAME) is None
    assert client.delete_document(NAME) is False


def test_a_second_create_is_document_exists(client):
    client.create_document(NAME, {"n": 1})
    with pytest.raises(DocumentExists) as raised:
        client.create_document(NAME, {"n": 2})
    assert "54301" in raised.value.message


def test_a_stale_revision_is_a_revision_mismatch(client):
    created = client.create_document(NAME, {"n": 1})
    client.update_document(NAME, {"n": 2})
    with pytest.raises(RevisionMismatch) as raised:
        client.update_document(NAME, {"n": 3}, if_match=created["revision"])
    assert "54103" in raised.value.message
    assert client.fetch_document(NAME)["data"] == {"n": 2}


def test_429_is_retried_with_exponential_backoff(client, sync, sleeps):
    client.create_document(NAME, {"n": 1})
    sync.fail_next("fetch", status=429, count=2)
    assert client.fetch_document(NAME)["data"] == {"n": 1}
    assert sync.calls["fetch"] == 3
    assert sleeps == [0.2, 0.4]


def test_retry_after_is_honoured_up_to_a_cap(sleeps):
    with SlowingSyncStandIn(ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID) as sync:
        client = SyncClient(sync.url, SERVICE_SID, ACCOUNT_SID, AUTH_TOKEN, sleep=sleeps.append)
        sync.fail_next("create", status=429)
        client.create_document(NAME, {"n": 1})
    assert sleeps == [2.0]


def test_5xx_that_persists_is_sync_unavailable(client, sync, sleeps):
    sync.fail_next("update", status=503, count=10)
    with pytest.raises(SyncUnavailable) as raised:
        client.update_document(NAME, {"n": 1})
    answer = answer_for(raised.value)
    assert answer.status == 502 and answer.code == "sync_unavailable" and raised.value.status == 503
    assert sync.calls["update"] == 4 and len(sleeps) == 3
    assert max(sleeps) <= 2.0


@pytest.mark.parametrize("status", [400, 403, 404])
def test_other_4xx_answers_are_never_retried(client, sync, sleeps, status):
    sync.fail_next("create", status=status)
    with pytest.raises(SyncError):
        client.create_document(NAME, {"n": 1})
    assert sync.calls["create"] == 1 and sleeps == []


def test_wrong_credentials_tell_the_operator(sync, caplog):
    client = SyncClient(sync.url, SERVICE_SID, ACCOUNT_SID, "wrong-sync-token")
    with pytest.raises(SyncCredentialsRefused) as raised:
        client.fetch_document(NAME)
    assert answer_for(raised.value).code == "sync_error"
    assert "ACCOUNT_SID" in caplog.text and "ACCOUNT_SID" not in raised.value.message
    assert "wrong-sync-token" not in raised.value.message + caplog.text


def test_a_reset_is_sync_unavailable(client, sync):
    sync.fail_next("fetch", reset=True)
    with pytest.raises(SyncUnavailable) as raised:
        client.fetch_document(NAME)
    assert answer_for(raised.value).code == "sync_unavailable" and "reset" in raised.value.message


# --- answers a client must not take at face value ----------------------------------------------

def test_a_map_sync_will_not_create_is_a_sync_error_and_no_item_is_claimed(client, sync):
    sync.fail_next("map-create", status=403)
    with pytest.raises(SyncError) as refused:
        client.create_map_item("leases", "k1", {}, 30)
    assert "403" in refused.value.message
    assert sync.calls["item-create"] == 1   # the first try met no map; nothing was retried


def test_a_map_made_meanwhile_by_someone_else_is_used(client, sync):
    sync.fail_next("map-create", status=409)   # another instance made it first
    with pytest.raises(SyncError):   # ... in this stand-in it does not exist, so the item still 404s
        client.create_map_item("leases", "k1", {}, 30)
    assert sync.calls["item-create"] == 2   # the 409 counted as "the map is there": tried again


def test_deleting_a_map_item_that_is_gone_is_false_and_a_refusal_is_an_error(client, sync):
    client.create_map_item("leases", "k1", {}, 30)
    assert client.delete_map_item("leases", "k1") is True
    assert client.delete_map_item("leases", "k1") is False
    client.create_map_item("leases", "k2", {}, 30)
    sync.fail_next("item-delete", status=403)
    with pytest.raises(SyncError):
        client.delete_map_item("leases", "k2")


@pytest.mark.parametrize("body,content_type,reason", [
    (b"<html>maintenance</html>", "text/html", "JSON"),
    (b'{"sid": "ET1", "data": "not an object"}', "application/json", "without a data object"),
    (b'["a", "list"]', "application/json", "without a data object"),
])
def test_a_2xx_that_is_not_a_document_is_a_sync_error(client, sync, body, content_type, reason):
    client.create_document(NAME, {"n": 1})
    sync.fail_next("fetch", status=200, body=body, content_type=content_type)
    with pytest.raises(SyncError) as refused:
        client.fetch_document(NAME)
    assert reason in refused.value.message


def test_an_error_page_instead_of_twilios_json_is_still_a_clear_error(client, sync):
    sync.fail_next("create", status=403, body=b"<html>Forbidden</html>", content_type="text/html")
    with pytest.raises(SyncError) as refused:
        client.create_document(NAME, {"n": 1})
    assert refused.value.message == "Twilio Sync answered 403 (not Twilio's JSON error): no message"


# --- the client's own logic, in process ------------------------------------------------------------

@pytest.mark.parametrize("status,twilio_code,kind", [
    (409, 54208, "MapItemExists"), (400, 54208, "MapItemExists"), (409, 54301, "DocumentExists"),
    (400, 54301, "DocumentExists"), (409, None, "DocumentExists"), (412, None, "RevisionMismatch"),
    (400, 54103, "RevisionMismatch"), (409, 54103, "DocumentExists"), (401, None, "SyncCredentialsRefused"),
    (401, 54301, "DocumentExists"), (404, 20404, "DocumentNotFound"), (403, 20003, "SyncError"),
    (400, None, "SyncError")])
def test_sync_s_error_table(status, twilio_code, kind):
    """sync.ERRORS: the first row whose status or Twilio code matches (a Map item's 54208 before a
    document's 409); the error keeps the status and Twilio's code."""
    sender = ScriptedSender()
    sender.answer(status, {"code": twilio_code, "message": "said"} if twilio_code else {"message": "said"})
    client = SyncClient("https://sync.example.com", SERVICE_SID, ACCOUNT_SID, AUTH_TOKEN, transport=sender)
    with pytest.raises(SyncError) as raised:
        client.create_document(NAME, {"n": 1})
    assert type(raised.value).__name__ == kind
    assert (raised.value.status, raised.value.error_code) == (status, twilio_code)


def test_a_conditional_update_sends_data_as_a_json_form_field_and_if_match():
    sender = ScriptedSender()
    sender.answer(200, {"unique_name": NAME, "data": {"n": 2}, "revision": "1"})
    client = SyncClient("https://sync.example.com", SERVICE_SID, ACCOUNT_SID, AUTH_TOKEN, transport=sender)
    client.update_document(NAME, {"n": 2}, if_match="0")
    sent = sender.sent[0]
    assert (sent.method, sent.url) == (
        "POST", f"https://sync.example.com/v1/Services/{SERVICE_SID}/Documents/ada.flex@example.com")
    assert sent.headers["If-Match"] == "0" and sent.headers["Authorization"].startswith("Basic ")
    assert json.loads(dict(urllib.parse.parse_qsl(sent.body.decode()))["Data"]) == {"n": 2}
