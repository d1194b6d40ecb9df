"""The Twilio Sync stand-in over real HTTP: Documents CRUD, revisions, Maps, errors and faults.

Errors are Twilio's {"code", "message", "more_info", "status"}: 401 / 20003 for credentials,
404 / 20404 for what is not there, 405 / 20004 for a method a resource does not take, 400 with
Sync's codes for bad input (54006 Data over 16 KiB, 54008 Data not a JSON object, 54011 Ttl out
of range, 54302 unique name, 54209 Map Item key).
"""
from __future__ import annotations

import base64
import datetime
import http.client
import json
import urllib.parse

import pytest

from sfdcflex.demo.standins import SyncStandIn
from sfdcflex.demo.standins import sync as sync_module
from sfdcflex.demo.standins import sync_maps

ACCOUNT_SID = "AC" + "c3" * 16
AUTH_TOKEN = "d4" * 16
SERVICE_SID = "IS" + "e5" * 16
SERVICE = f"/v1/Services/{SERVICE_SID}"
DOCUMENTS = f"{SERVICE}/Documents"
MAPS = f"{SERVICE}/Maps"


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


# -- edge paths ---------------------------------------------------------------------------------

def twilio_error(body: object, status: int, code: int) -> bool:
    """True when `body` is Twilio's error object for `status` and `code`."""
    assert isinstance(body, dict) and set(body) == {"code", "message", "more_info", "status"}
    assert body["message"] and body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    return (body["status"], body["code"]) == (status, code)


def make_map(sync: SyncStandIn, name: str) -> dict:
    status, made = call(sync, "POST", MAPS, {"UniqueName": name})
    assert status == 201
    return made


def later(module, seconds: int):
    """`module._now` as if `seconds` had passed: Ttl expiry without waiting."""
    real = module._now
    return lambda ahead=0: real(ahead + seconds)


# -- credentials and paths ---------------------------------------------------------------------

@pytest.mark.parametrize("method, path, form", [
    ("GET", DOCUMENTS, None),
    ("POST", DOCUMENTS, {"UniqueName": "auth-doc", "Data": "{}"}),
    ("POST", f"{DOCUMENTS}/auth-doc", {"Data": "{}"}),
    ("DELETE", f"{DOCUMENTS}/auth-doc", None),
    ("POST", MAPS, {"UniqueName": "auth-map"}),
    ("GET", f"{MAPS}/auth-map", None),
    ("POST", f"{MAPS}/auth-map/Items", {"Key": "k", "Data": "{}"}),
])
def test_every_endpoint_wants_the_account_credentials(sync, method, path, form):
    status, body = call(sync, method, path, form, password="wrong")
    assert twilio_error(body, 401, 20003) and body["message"] == "Authenticate"
    assert "auth-doc" not in sync.documents and sync.maps.item_keys("auth-map") == []


@pytest.mark.parametrize("authorization", [
    f"Bearer {AUTH_TOKEN}",                                            # not Basic at all
    "Bearer " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode(),
    "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),            # not UTF-8
    "Basic QUM",                                                       # bad base64 padding
])
def test_an_authorization_that_is_not_readable_basic_is_401(sync, authorization):
    status, body = call(sync, "GET", DOCUMENTS, headers={"Authorization": authorization})
    assert twilio_error(body, 401, 20003)


def test_a_path_sync_does_not_have_is_404_naming_it(sync):
    status, body = call(sync, "GET", f"{SERVICE}/Lists")
    assert twilio_error(body, 404, 20404)
    assert body["message"] == f"The requested resource /Services/{SERVICE_SID}/Lists was not found"


@pytest.mark.parametrize("method, path", [
    ("PUT", DOCUMENTS), ("PUT", f"{DOCUMENTS}/x"), ("PUT", MAPS), ("PUT", f"{MAPS}/x"),
    ("PATCH", f"{MAPS}/x/Items"), ("PUT", f"{MAPS}/x/Items/k"),
])
def test_a_method_a_resource_does_not_take_is_405_20004(sync, method, path):
    status, body = call(sync, method, path, {})
    assert twilio_error(body, 405, 20004)


# -- Documents ---------------------------------------------------------------------------------

def test_list_answers_every_document_with_paging_meta(sync):
    call(sync, "POST", DOCUMENTS, {"UniqueName": "listed", "Data": '{"n": 1}'})
    status, body = call(sync, "GET", DOCUMENTS)
    assert status == 200
    listed = [d for d in body["documents"] if d["unique_name"] == "listed"]
    assert len(listed) == 1 and listed[0]["data"] == {"n": 1} and listed[0]["sid"].startswith("ET")
    meta = body["meta"]
    assert (meta["key"], meta["page"], meta["page_size"], meta["next_page_url"]) == ("documents", 0, 50, None)
    assert meta["url"] == f"https://sync.twilio.com{DOCUMENTS}?PageSize=50&Page=0"


@pytest.mark.parametrize("ttl", ["-1", "soon", "31536001", "1.5"])
def test_a_ttl_out_of_range_is_400_54011(sync, ttl):
    status, body = call(sync, "POST", DOCUMENTS, {"UniqueName": "ttl-doc", "Data": "{}", "Ttl": ttl})
    assert twilio_error(body, 400, 54011)
    assert "ttl-doc" not in sync.documents


@pytest.mark.parametrize("data, code", [
    ('{"pad": "' + "x" * (16 * 1024) + '"}', 54006),   # over Sync's 16 KiB
    ("[1, 2]", 54008),                                   # JSON, not an object
    ('"text"', 54008),
    ("{not json", 54008),
])
def test_data_sync_cannot_store_is_refused_on_create_and_update(sync, data, code):
    status, body = call(sync, "POST", DOCUMENTS, {"UniqueName": "bad-data", "Data": data})
    assert twilio_error(body, 400, code)
    assert "bad-data" not in sync.documents
    call(sync, "POST", DOCUMENTS, {"UniqueName": "keeps-data", "Data": '{"v": 1}'})
    status, body = call(sync, "POST", f"{DOCUMENTS}/keeps-data", {"Data": data})
    assert twilio_error(body, 400, code)
    assert sync.documents["keeps-data"]["data"] == {"v": 1}


def test_data_of_exactly_16_kib_is_accepted(sync):
    data = '{"pad": "' + "x" * (16 * 1024 - 11) + '"}'
    assert len(data) == 16 * 1024
    assert call(sync, "POST", DOCUMENTS, {"UniqueName": "full-doc", "Data": data})[0] == 201


def test_an_update_without_data_keeps_the_data_and_bumps_the_revision(sync):
    call(sync, "POST", DOCUMENTS, {"UniqueName": "no-data", "Data": '{"v": 1}'})
    status, body = call(sync, "POST", f"{DOCUMENTS}/no-data", {})
    assert status == 200 and (body["data"], body["revision"]) == ({"v": 1}, "1")


def test_a_document_past_its_ttl_is_gone(sync, monkeypatch):
    status, made = call(sync, "POST", DOCUMENTS, {"UniqueName": "short-lived", "Data": "{}", "Ttl": "60"})
    assert status == 201 and made["date_expires"]
    monkeypatch.setattr(sync_module, "_now", later(sync_module, 30))
    assert call(sync, "GET", f"{DOCUMENTS}/short-lived")[0] == 200
    monkeypatch.setattr(sync_module, "_now", later(sync_module, 61))
    for name in ("short-lived", made["sid"]):
        status, body = call(sync, "GET", f"{DOCUMENTS}/{name}")
        assert twilio_error(body, 404, 20404)
    assert "short-lived" not in sync.documents
    # Its unique name is free again.
    assert call(sync, "POST", DOCUMENTS, {"UniqueName": "short-lived", "Data": "{}"})[0] == 201


# -- Maps ----------------------------------------------------------------------------------------

def test_a_map_is_fetched_by_unique_name_or_sid_without_its_items(sync):
    made = make_map(sync, "fetched-map")
    call(sync, "POST", f"{MAPS}/fetched-map/Items", {"Key": "k", "Data": "{}"})
    for name in ("fetched-map", made["sid"]):
        assert call(sync, "GET", f"{MAPS}/{name}") == (200, made)
    assert set(made) == {"sid", "unique_name", "account_sid", "service_sid", "revision",
                         "date_expires", "date_created", "date_updated", "created_by", "url"}
    status, body = call(sync, "GET", f"{MAPS}/ghost-map")
    assert twilio_error(body, 404, 20404)


def test_items_are_added_by_map_sid_too(sync):
    made = make_map(sync, "by-sid-map")
    assert call(sync, "POST", f"{MAPS}/{made['sid']}/Items", {"Key": "k", "Data": "{}"})[0] == 201
    assert sync.maps.item_keys("by-sid-map") == ["k"]


@pytest.mark.parametrize("name", ["", "y" * 257, "MP" + "0123abcd" * 4])
def test_a_map_unique_name_sync_cannot_hold_is_400_54302(sync, name):
    status, body = call(sync, "POST", MAPS, {"UniqueName": name})
    assert twilio_error(body, 400, 54302)


@pytest.mark.parametrize("form", [{"ItemTtl": "31536001"}, {"ItemTtl": "-5"}, {"Ttl": "later"}])
def test_an_item_ttl_out_of_range_is_400_54011(sync, form):
    make_map(sync, "ttl-map-" + next(iter(form.values())))
    items = f"{MAPS}/ttl-map-{next(iter(form.values()))}/Items"
    status, body = call(sync, "POST", items, {"Key": "k", "Data": "{}", **form})
    assert twilio_error(body, 400, 54011)


def test_item_data_sync_cannot_store_is_refused(sync):
    make_map(sync, "data-map")
    status, body = call(sync, "POST", f"{MAPS}/data-map/Items", {"Key": "k", "Data": "[1]"})
    assert twilio_error(body, 400, 54008)
    assert sync.maps.item_keys("data-map") == []


def test_deleting_an_item_of_a_missing_map_or_key_is_404(sync):
    make_map(sync, "delete-map")
    for path in (f"{MAPS}/ghost-map/Items/k", f"{MAPS}/delete-map/Items/ghost"):
        status, body = call(sync, "DELETE", path)
        assert twilio_error(body, 404, 20404)


def test_item_keys_of_a_missing_map_is_empty(sync):
    assert sync.maps.item_keys("never-made") == []


def test_an_item_past_its_ttl_is_gone_and_its_key_free(sync, monkeypatch):
    make_map(sync, "lease-map")
    items = f"{MAPS}/lease-map/Items"
    assert call(sync, "POST", items, {"Key": "lease", "Data": "{}", "ItemTtl": "30"})[0] == 201
    assert call(sync, "POST", items, {"Key": "kept", "Data": "{}"})[0] == 201
    monkeypatch.setattr(sync_maps, "_now", later(sync_maps, 31))
    status, body = call(sync, "GET", f"{items}/lease")
    assert twilio_error(body, 404, 20404)
    assert sync.maps.item_keys("lease-map") == ["kept"]
    assert call(sync, "POST", items, {"Key": "lease", "Data": "{}", "ItemTtl": "30"})[0] == 201


def test_expiry_stamps_are_seconds_ahead_in_utc():
    stamp = datetime.datetime.strptime(sync_module._now(90), "%Y-%m-%dT%H:%M:%SZ")
    ahead = stamp - datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert datetime.timedelta(seconds=88) < ahead < datetime.timedelta(seconds=91)
