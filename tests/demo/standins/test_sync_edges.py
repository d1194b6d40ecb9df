"""The Sync stand-in's error and edge paths over real HTTP, each answered as Twilio Sync does.

Errors are Twilio's {"code", "message", "more_info", "status"}: 401 / 20003 for credentials,
404 / 20404 for what is not there, 405 / 20004 for a method a resource does not take, 400 with
Sync's codes for bad input (54006 Data over 16 KiB, 54008 Data not a JSON object, 54011 Ttl out
of range, 54302 unique name, 54209 Map Item key). One stand-in serves the whole module; each
test uses its own document and Map names.
"""
from __future__ import annotations

import base64
import datetime
import json

import pytest

from sfdcflex.demo.standins import SyncStandIn
from sfdcflex.demo.standins import sync as sync_module
from sfdcflex.demo.standins import sync_maps

from tests.demo.standins.test_sync import ACCOUNT_SID, AUTH_TOKEN, DOCUMENTS, MAPS, SERVICE_SID, call

SERVICE = f"/v1/Services/{SERVICE_SID}"


@pytest.fixture(scope="module")
def sync():
    with SyncStandIn(ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID) as server:
        yield server


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
