"""Refresh under Salesforce's refresh-token rotation, end to end over the stand-ins: one refresh
for a storm, the new refresh token saved every time, never a loop, dead grants dropped, what the
browser and the operator are told, and links that change under a refresh. (TokenKeeper in
process, where requests meet one refresh and links change while it is at Salesforce:
tests/test_keeper.py.)"""
from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor

from sfdcflex.clients.sync import SyncClient
from sfdcflex.keeper import NOT_LINKED
from sfdcflex.store import JsonFileTokenStore
from sfdcflex.sync_store import LEASE_MAP, SyncTokenStore
from tests.support.http import call, hops

ALICE = "alice@example.com"


# --- one refresh, its new refresh token saved, never a loop -----------------------------------


def test_a_storm_after_expiry_causes_exactly_one_refresh(crm):
    crm.link(ALICE)
    token = crm.token(ALICE)
    phones = ["+14155550101", "+12125550103", "+442079460958", "+1 999 555 0100"] * 2
    crm.post("/get-user", {"Token": token})  # tokens now held in memory
    crm.sf.expire_access_tokens()
    refreshes = len(crm.sf.refresh_log)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda p: crm.post("/get-contact", {"Token": token, "phone": p}), phones))
    assert [a.status for a in answers] == [200, 200, 200, 404] * 2
    assert len(crm.sf.refresh_log) == refreshes + 1
    stored = crm.links()[ALICE]
    assert stored["refresh_token"] != crm.sf.refresh_log[-1]  # the rotated one was saved


def test_rotated_refresh_token_is_saved_every_time(crm):
    crm.link(ALICE)
    token = crm.token(ALICE)
    seen = set()
    for round_ in range(3):
        crm.sf.expire_access_tokens()
        answer = crm.post("/get-contact", {"Token": token, "phone": f"+1415555010{round_ + 1}"})
        assert answer.status in (200, 404)
        assert "sfdc-refresh" in answer.headers["Server-Timing"]
        seen.add(crm.links()[ALICE]["refresh_token"])
    assert len(seen) == 3
    assert len(set(crm.sf.refresh_log)) == len(crm.sf.refresh_log)  # no refresh token used twice


def test_invalid_grant_drops_the_link_and_asks_to_connect_again(crm):
    crm.link(ALICE)
    refresh_token = crm.links()[ALICE]["refresh_token"]
    revoke = call(crm.sf.url, "POST", "/services/oauth2/revoke", body=f"token={refresh_token}".encode(),
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert revoke.status == 200
    answer = crm.post("/get-contact", {"Token": crm.token(ALICE), "phone": "+14155550101"})
    assert answer.status == 404 and answer.json()["error"] == "not_linked"
    assert "again" in answer.json()["message"].lower()
    assert ALICE not in json.loads(crm.store_path.read_text())["agents"]


def test_other_401s_never_loop(crm):
    crm.link(ALICE)
    token = crm.token(ALICE)
    crm.post("/get-user", {"Token": token})
    crm.sf.fail_next("search", status=401, body=b'[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]',
                     content_type="application/json", count=2)
    refreshes, searches = len(crm.sf.refresh_log), crm.sf.calls["search"]
    answer = crm.post("/get-contact", {"Token": token, "phone": "+14155550101"})
    assert answer.status == 502
    assert len(crm.sf.refresh_log) == refreshes + 1 and crm.sf.calls["search"] == searches + 2


def test_a_fresh_session_refused_at_once_is_a_502_that_says_so(crm):
    """A session Salesforce refuses right after refreshing it is a 502 in these words, never a loop."""
    assert crm.link(ALICE).status == 200
    crm.sf.fail_next("userinfo", status=401, count=2)   # refused before and after the refresh
    answer = crm.post("/get-user", {"Token": crm.token(ALICE)})
    assert answer.status == 502
    assert answer.json() == {"error": "salesforce_session_refused",
                             "message": "Salesforce refused a freshly refreshed session; try again later"}
    assert len(crm.sf.refresh_log) == 1   # one refresh, never a loop


# --- what the browser and the operator are told ---------------------------------------------


def test_a_refresh_shows_each_of_its_hops_in_server_timing(crm):
    """The browser sees each hop of a refresh, named and in order, in Server-Timing."""
    assert crm.link(ALICE).status == 200
    token = crm.token(ALICE)
    assert crm.post("/get-user", {"Token": token}).status == 200
    crm.sf.expire_access_tokens()
    crm.services.lookup.forget(ALICE)
    answer = crm.post("/get-user", {"Token": token})
    assert answer.status == 200
    seen = hops(answer)
    # The in-memory tokens were looked at for the cache key already: one hop, before the miss.
    assert seen.count('store;desc="tokens in memory"') == 1
    assert seen.index('store;desc="tokens in memory"') < seen.index('cache;desc="miss"')
    assert seen[seen.index('cache;desc="miss"'):] == [
        'cache;desc="miss"',
        'sfdc-userinfo;desc="Salesforce userinfo"', 'store;desc="token store re-read"',
        'sfdc-refresh;desc="Salesforce token refresh"', 'store;desc="token store write"',
        'sfdc-userinfo;desc="Salesforce userinfo (after refresh)"', "total"]


def test_a_save_that_fails_logs_who_and_why(crm_factory, caplog):
    """A refreshed pair Sync will not take is held in memory; the operator's log says who and why."""
    crm = crm_factory(store="sync")
    client = SyncClient(crm.sync.url, crm.sync.service_sid, crm.iam.account_sid, crm.iam.auth_token,
                        retries=0)
    crm.services.keeper.store = SyncTokenStore(client)
    assert crm.link(ALICE).status == 200
    token = crm.token(ALICE)
    crm.sf.expire_access_tokens()
    crm.sync.fail_next("update", status=503)
    with caplog.at_level(logging.WARNING, logger="sfdcflex"):
        assert crm.post("/get-user", {"Token": token}).status == 200
    assert (f"could not save refreshed Salesforce tokens for {ALICE} (sync_unavailable); holding them "
            "in memory and retrying on the next request") in caplog.messages


def test_a_save_the_disk_refuses_logs_the_os_error(crm, caplog, monkeypatch):
    """A save the disk refuses logs the OS error itself."""
    assert crm.link(ALICE).status == 200
    token = crm.token(ALICE)
    crm.sf.expire_access_tokens()

    def full_disk(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("sfdcflex.store.os.replace", full_disk)
    with caplog.at_level(logging.WARNING, logger="sfdcflex"):
        assert crm.post("/get-user", {"Token": token}).status == 200
    assert (f"could not save refreshed Salesforce tokens for {ALICE} ([Errno 28] No space left on "
            "device); holding them in memory and retrying on the next request") in caplog.messages


def test_relinking_when_salesforce_cannot_revoke_the_old_grant_still_links_and_logs_it(crm, caplog):
    caplog.set_level("WARNING", logger="sfdcflex")
    crm.link(ALICE)
    old = crm.links()[ALICE]["refresh_token"]
    crm.sf.fail_next("revoke", status=503)
    assert crm.link(ALICE).status == 200
    assert crm.links()[ALICE]["refresh_token"] != old   # the new link is saved all the same
    assert crm.post("/get-user", {"Token": crm.token(ALICE)}).status == 200
    warnings = [r.getMessage() for r in caplog.records if "revoking the replaced" in r.getMessage()]
    assert warnings == ["link alice@example.com: revoking the replaced Salesforce grant failed (salesforce_error)"]
    assert old not in caplog.text   # the token the log is about never appears in it


# --- links that change under a refresh -----------------------------------------------------


def test_a_refresh_on_one_instance_is_used_by_another_without_a_second(crm_factory):
    one, two = crm_factory(), crm_factory()
    one.link(ALICE)
    token = one.token(ALICE)
    assert two.post("/get-user", {"Token": token}).status == 200  # two now holds the old tokens
    one.sf.expire_access_tokens()
    refreshes = len(one.sf.refresh_log)
    assert one.post("/get-contact", {"Token": token, "phone": "+14155550101"}).status == 200
    assert len(one.sf.refresh_log) == refreshes + 1
    assert two.post("/get-contact", {"Token": token, "phone": "+12125550103"}).status == 200
    assert len(one.sf.refresh_log) == refreshes + 1  # two re-read the store instead of refreshing


def test_a_link_gone_from_the_store_says_connect_salesforce(crm_factory):
    """A link deleted on another instance is not refreshed: a 404 that asks the agent to connect Salesforce."""
    one, two = crm_factory(), crm_factory()
    assert one.link(ALICE).status == 200
    token = one.token(ALICE)
    assert two.post("/get-user", {"Token": token}).status == 200
    JsonFileTokenStore(one.store_path).delete(ALICE)
    one.sf.expire_access_tokens()
    two.services.lookup.forget(ALICE)
    answer = two.post("/get-user", {"Token": token})
    assert answer.status == 404 and answer.json() == {"error": "not_linked", "message": NOT_LINKED}
    assert one.sf.refresh_log == []


def test_refreshed_tokens_sync_cannot_take_are_used_and_refreshed_again_from_memory(crm_factory):
    """Sync fails every save for a while: the rotated tokens live in memory meanwhile, the next
    refresh starts from them (never from the spent stored one), and they reach Sync when it is back."""
    crm = crm_factory(store="sync")
    client = SyncClient(crm.sync.url, crm.sync.service_sid, crm.iam.account_sid, crm.iam.auth_token,
                        retries=1, sleep=lambda seconds: None)
    crm.services.keeper.store = SyncTokenStore(client)
    assert crm.link(ALICE).status == 200
    token = crm.token(ALICE)
    assert crm.post("/get-user", {"Token": token}).status == 200
    crm.sync.fail_next("update", status=503, count=4)   # two saves, each tried twice
    for _ in range(2):   # two expiries while Sync is down: the second refresh starts from memory
        crm.sf.expire_access_tokens()
        crm.services.lookup.forget(ALICE)
        assert crm.post("/get-user", {"Token": token}).status == 200
    log = crm.sf.refresh_log
    assert len(log) == 2 and len(set(log)) == 2          # never a spent refresh token again
    crm.services.lookup.forget(ALICE)
    assert crm.post("/get-user", {"Token": token}).status == 200   # Sync is back: saved now
    saved = client.fetch_document(ALICE)["data"]["refresh_token"]
    assert saved not in log                              # the newest, unspent one was stored


def test_a_refresh_in_progress_elsewhere_answers_503_with_retry_after(crm_factory):
    """Another instance holds the agent's Sync refresh lease: wait a bounded time, then a 503
    with Retry-After."""
    crm = crm_factory(store="sync")
    sync = SyncClient(crm.sync.url, crm.sync.service_sid, crm.iam.account_sid, crm.iam.auth_token)
    crm.services.keeper.store = SyncTokenStore(sync, lease_wait=0.15)
    assert crm.link(ALICE).status == 200
    token = crm.token(ALICE)
    assert crm.post("/get-user", {"Token": token}).status == 200
    lease = hashlib.sha256(ALICE.encode()).hexdigest()   # the store's lease: a Sync Map item
    sync.create_map_item(LEASE_MAP, lease, {"holder": "another-instance"}, ttl=30)
    crm.sf.expire_access_tokens()
    crm.services.lookup.forget(ALICE)
    busy = crm.post("/get-user", {"Token": token})
    assert busy.status == 503 and busy.json()["error"] == "refresh_in_progress"
    assert int(busy.headers["Retry-After"]) >= 1
    assert crm.sf.refresh_log == []          # we never presented the refresh token
    sync.delete_map_item(LEASE_MAP, lease)
    assert crm.post("/get-user", {"Token": token}).status == 200
    assert len(crm.sf.refresh_log) == 1
