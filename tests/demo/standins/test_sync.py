"""The Twilio Sync stand-in over real HTTP: Documents CRUD, revisions, errors and faults."""
from __future__ import annotations

import base64
import http.client
import json
import urllib.parse

import pytest

from sfdcflex.demo.standins import SyncStandIn

ACCOUNT_SID = "AC" + "c3" * 16
AUTH_TOKEN = "d4" * 16
SERVICE_SID = "IS" + "e5" * 16
DOCUMENTS = f"/v1/Services/{SERVICE_SID}/Documents"


def call(sync: SyncStandIn, method: str, path: str, form: dict | None = None, *,
         headers: dict | None = None, password: str = AUTH_TOKEN) -> tuple[int, object]:
    parts = urllib.parse.urlsplit(sync.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    credentials = base64.b64encode(f"{ACCOUNT_SID}:{password}".encode()).decode()
    sent = {"Authorization": f"Basic {credentials}", **(headers or {})}
    body = None
    if form is not None:
        body = urllib.parse.urlencode(form)
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        connection.request(method, path, body, sent)
        response = connection.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None
    finally:
        connection.close()


def create(sync: SyncStandIn, name: str, data: dict) -> tuple[int, dict]:
    return call(sync, "POST", DOCUMENTS, {"UniqueName": name, "Data": json.dumps(data)})


@pytest.fixture()
def sync():
    with SyncStandIn(ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID) as server:
        yield server


def test_create_answers_a_document_resource(sync):
    status, document = create(sync, "alice@sfdcflex.demo", {"access_token": "a", "refresh_token": "r"})
    assert status == 201
    assert document["sid"].startswith("ET") and len(document["sid"]) == 34
    assert document["unique_name"] == "alice@sfdcflex.demo"
    assert (document["account_sid"], document["service_sid"]) == (ACCOUNT_SID, SERVICE_SID)
    assert document["url"].endswith(f"{DOCUMENTS}/{document['sid']}")
    assert document["revision"] == "0" and document["date_expires"] is None
    assert document["data"] == {"access_token": "a", "refresh_token": "r"}
    assert document["created_by"] == "system" and document["date_created"].endswith("Z")
    assert sync.documents["alice@sfdcflex.demo"]["data"]["refresh_token"] == "r"


def test_a_duplicate_unique_name_is_409_54301(sync):
    create(sync, "alice", {})
    status, body = create(sync, "alice", {"x": 1})
    assert (status, body["code"], body["status"]) == (409, 54301, 409)
    assert body["more_info"] == "https://www.twilio.com/docs/errors/54301"
    assert sync.documents["alice"]["data"] == {}


def test_fetch_by_unique_name_or_sid_and_404(sync):
    _, document = create(sync, "alice", {"k": "v"})
    assert call(sync, "GET", f"{DOCUMENTS}/alice") == (200, document)
    assert call(sync, "GET", f"{DOCUMENTS}/{document['sid']}") == (200, document)
    status, body = call(sync, "GET", f"{DOCUMENTS}/nobody")
    assert (status, body["code"]) == (404, 20404)
    assert "/Documents/nobody was not found" in body["message"]


def test_update_bumps_the_revision_and_honours_if_match(sync):
    create(sync, "alice", {"v": 0})
    status, updated = call(sync, "POST", f"{DOCUMENTS}/alice", {"Data": json.dumps({"v": 1})},
                           headers={"If-Match": "0"})
    assert (status, updated["revision"], updated["data"]) == (200, "1", {"v": 1})
    status, body = call(sync, "POST", f"{DOCUMENTS}/alice", {"Data": json.dumps({"v": 2})},
                        headers={"If-Match": "0"})
    assert (status, body["code"]) == (412, 54103)
    assert sync.documents["alice"]["data"] == {"v": 1}
    status, unconditional = call(sync, "POST", f"{DOCUMENTS}/alice", {"Data": json.dumps({"v": 3})})
    assert (status, unconditional["revision"]) == (200, "2")


def test_update_of_a_missing_document_is_404(sync):
    status, body = call(sync, "POST", f"{DOCUMENTS}/ghost", {"Data": "{}"})
    assert (status, body["code"]) == (404, 20404)


def test_data_must_be_a_json_object(sync):
    status, body = call(sync, "POST", DOCUMENTS, {"UniqueName": "x", "Data": "not json"})
    assert status == 400 and body["status"] == 400
    assert "x" not in sync.documents


def test_delete_then_404(sync):
    create(sync, "alice", {})
    assert call(sync, "DELETE", f"{DOCUMENTS}/alice") == (204, None)
    assert call(sync, "DELETE", f"{DOCUMENTS}/alice")[0] == 404
    assert sync.documents == {}


def test_delete_with_a_stale_revision_is_412(sync):
    create(sync, "alice", {})
    assert call(sync, "DELETE", f"{DOCUMENTS}/alice", headers={"If-Match": "7"})[0] == 412
    assert "alice" in sync.documents


def test_bad_credentials_are_401_20003(sync):
    status, body = call(sync, "GET", f"{DOCUMENTS}/alice", password="wrong")
    assert (status, body["code"], body["message"]) == (401, 20003, "Authenticate")


def test_an_unknown_service_is_404(sync):
    status, body = call(sync, "GET", f"/v1/Services/IS{'0' * 32}/Documents/alice")
    assert (status, body["code"]) == (404, 20404)


def test_injected_429_then_recovery(sync):
    sync.fail_next("fetch", status=429, count=2)
    create(sync, "alice", {})
    for _ in range(2):
        status, body = call(sync, "GET", f"{DOCUMENTS}/alice")
        assert (status, body["code"]) == (429, 20429)
    assert call(sync, "GET", f"{DOCUMENTS}/alice")[0] == 200
    assert sync.calls["fetch"] == 3 and sync.calls["create"] == 1


def test_injected_500_on_update(sync):
    create(sync, "alice", {"v": 0})
    sync.fail_next("update", status=500)
    status, body = call(sync, "POST", f"{DOCUMENTS}/alice", {"Data": "{}"})
    assert (status, body["code"]) == (500, 20500)
    assert sync.documents["alice"]["revision"] == "0"


def test_injected_reset_on_create(sync):
    sync.fail_next("create", reset=True)
    with pytest.raises(ConnectionError):
        create(sync, "alice", {})
    assert sync.documents == {}


MAPS = f"/v1/Services/{SERVICE_SID}/Maps"


@pytest.mark.parametrize("name", ["", "x" * 257, "ET" + "0123abcd" * 4])
def test_a_unique_name_sync_cannot_hold_is_400_54302(sync, name):
    status, body = create(sync, name, {})
    assert (status, body["code"]) == (400, 54302)
    assert sync.documents == {}


def test_map_items_are_claimed_once_until_deleted(sync):
    items = f"{MAPS}/leases/Items"
    status, _ = call(sync, "POST", items, {"Key": "k", "Data": "{}"})
    assert status == 404   # no such Map yet
    status, made = call(sync, "POST", MAPS, {"UniqueName": "leases"})
    assert status == 201 and made["sid"].startswith("MP") and made["unique_name"] == "leases"
    assert call(sync, "POST", MAPS, {"UniqueName": "leases"})[1]["code"] == 54301
    status, item = call(sync, "POST", items, {"Key": "k", "Data": '{"a": 1}', "ItemTtl": "30"})
    assert status == 201 and item["key"] == "k" and item["data"] == {"a": 1} and item["date_expires"]
    status, body = call(sync, "POST", items, {"Key": "k", "Data": "{}"})
    assert (status, body["code"]) == (409, 54208)
    assert call(sync, "POST", items, {"Key": "x" * 257, "Data": "{}"})[1]["code"] == 54209
    assert call(sync, "GET", f"{items}/k") == (200, item)
    assert call(sync, "DELETE", f"{items}/k")[0] == 204
    assert call(sync, "GET", f"{items}/k")[0] == 404
    assert call(sync, "POST", items, {"Key": "k", "Data": "{}"})[0] == 201   # free again
    assert sync.maps.item_keys("leases") == ["k"]
