"""Refresh under Salesforce's refresh-token rotation: single-flight, saved every time, never looping."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

ALICE = "alice@example.com"


def _stored(crm) -> dict:
    return json.loads(crm.store_path.read_text())["agents"][ALICE]


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
    stored = _stored(crm)
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
        seen.add(_stored(crm)["refresh_token"])
    assert len(seen) == 3
    assert len(set(crm.sf.refresh_log)) == len(crm.sf.refresh_log)  # no refresh token used twice


def test_invalid_grant_drops_the_link_and_asks_to_connect_again(crm):
    from tests.support.http import call
    crm.link(ALICE)
    refresh_token = _stored(crm)["refresh_token"]
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


def test_a_dead_chain_never_deletes_a_link_made_meanwhile(crm_factory):
    from concurrent.futures import ThreadPoolExecutor as Pool
    from tests.support.processes import wait_until
    one, two = crm_factory(), crm_factory()
    one.link(ALICE)
    token = one.token(ALICE)
    assert one.post("/get-user", {"Token": token}).status == 200  # one holds the first pair
    one.sf.expire_access_tokens()
    tokens_before = one.sf.calls["token"]
    one.sf.fail_next("token", stall=1.0)  # one's refresh is on the wire while...
    with Pool(1) as pool:
        lookup = pool.submit(one.post, "/get-contact", {"Token": token, "phone": "+14155550101"})
        assert wait_until(lambda: one.sf.calls["token"] > tokens_before, 5)
        assert two.post("/unlink", {"Token": token}).json() == {"unlinked": True}  # ...the chain dies
        assert two.link(ALICE).status == 200                                     # and a new link is made
        answer = lookup.result(10)
    assert answer.status == 200, answer.body  # one adopted the new link instead of deleting it
    assert ALICE in json.loads(one.store_path.read_text())["agents"]


def test_relinking_when_salesforce_cannot_revoke_the_old_grant_still_links_and_logs_it(crm, caplog):
    caplog.set_level("WARNING", logger="sfdcflex")
    crm.link(ALICE)
    old = _stored(crm)["refresh_token"]
    crm.sf.fail_next("revoke", status=503)
    assert crm.link(ALICE).status == 200
    assert _stored(crm)["refresh_token"] != old   # the new link is saved all the same
    assert crm.post("/get-user", {"Token": crm.token(ALICE)}).status == 200
    warnings = [r.getMessage() for r in caplog.records if "revoking the replaced" in r.getMessage()]
    assert warnings == ["link alice@example.com: revoking the replaced Salesforce grant failed (salesforce_error)"]
    assert old not in caplog.text   # the token the log is about never appears in it
