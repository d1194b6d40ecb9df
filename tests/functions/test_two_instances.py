"""Two instances sharing one token store (Twilio Sync, or one JSON file) under Salesforce's
refresh-token rotation: a refresh on one is used by the other, and no rotated-out refresh
token is ever sent again (Salesforce would revoke the agent's whole chain)."""
from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

ALICE, BOB = "alice@example.com", "bob@example.com"
PHONES = ("+14155550101", "+12125550103", "+442079460958", "(646) 555-0199")
ROUNDS = 5  # every request reaches Salesforce: the instances cache nothing (CACHE_TTL=0)


def _assert_no_reuse(sf) -> None:
    log = sf.refresh_log
    reused = [token for token in set(log) if log.count(token) > 1]
    assert not reused, f"{len(reused)} rotated-out refresh token(s) sent to Salesforce again"


@pytest.mark.parametrize("store", ["sync", "json"])
def test_a_refresh_on_one_instance_is_seen_by_the_other_without_a_second(crm_factory, store):
    one, two = (crm_factory(TOKEN_STORE=store, CACHE_TTL="0") for _ in range(2))
    one.link(ALICE)
    token = one.token(ALICE)
    for round_ in range(ROUNDS):
        # Both hold the current tokens in memory; the session then expires at Salesforce.
        assert one.post("/get-user", {"Token": token}).status == 200
        assert two.post("/get-user", {"Token": token}).status == 200
        one.sf.expire_access_tokens()
        refreshes = len(one.sf.refresh_log)
        first, second = (one, two) if round_ % 2 == 0 else (two, one)
        assert first.post("/get-contact", {"Token": token, "phone": PHONES[round_ % 4]}).status == 200
        assert len(one.sf.refresh_log) == refreshes + 1
        answer = second.post("/get-contact", {"Token": token, "phone": PHONES[(round_ + 1) % 4]})
        assert answer.status == 200, answer.body
        # The second read the store instead: after Salesforce's 401 (Sync), or at once because
        # the JSON file's stamp says it changed.
        assert re.search(r'"token store (re-)?read"', answer.headers["Server-Timing"])
        assert len(one.sf.refresh_log) == refreshes + 1
    _assert_no_reuse(one.sf)


@pytest.mark.parametrize("store", ["sync", "json"])
def test_both_instances_hit_by_the_expiry_at_once_never_reuse_a_refresh_token(crm_factory, store):
    one, two = (crm_factory(TOKEN_STORE=store, CACHE_TTL="0") for _ in range(2))
    one.link(ALICE)
    token = one.token(ALICE)
    statuses = []
    for _ in range(ROUNDS):
        statuses += [crm.post("/get-user", {"Token": token}).status for crm in (one, two)]
        one.sf.expire_access_tokens()
        # Calls arrive on both instances in the same instant, as behind a load balancer.
        start = threading.Barrier(8)

        def lookup(n: int) -> int:
            crm = (one, two)[n % 2]
            start.wait(5)
            return crm.post("/get-contact", {"Token": token, "phone": PHONES[n % 4]}).status

        with ThreadPoolExecutor(8) as pool:
            statuses += list(pool.map(lookup, range(8)))
    after = [crm.post("/get-user", {"Token": token}).status for crm in (one, two)]
    print(f"\ntwo instances ({store}): {ROUNDS} simultaneous expiries, {len(one.sf.refresh_log)} "
          f"refreshes, statuses {sorted(set(statuses))}, after {after}")
    _assert_no_reuse(one.sf)
    assert set(statuses) == {200} and after == [200, 200]
