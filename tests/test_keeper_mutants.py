"""Keeper behaviour that mutation testing found unchecked (mutmut 3.8, issue 18): what a refresh
tells the browser in Server-Timing, what it tells the operator in the log, what unlink revokes.

Each test names the surviving mutants it kills; the rest are listed in README's reliability report.
"""
from __future__ import annotations

import logging
import threading
import time

from sfdcflex.clients.sync import SyncClient
from sfdcflex.keeper import NOT_LINKED
from sfdcflex.store import JsonFileTokenStore
from sfdcflex.sync_store import SyncTokenStore

ALICE = "alice@example.com"


def _hops(answer) -> list[str]:
    """Server-Timing entries without their durations: name;desc="..." in order."""
    return [entry.split(";dur=")[0].strip() for entry in answer.headers["Server-Timing"].split(",")]


def test_a_refresh_shows_each_of_its_hops_in_server_timing(crm):
    """call 7, 19; _refresh 27-29; _refresh_from 2, 5, 7-9; _save_unsaved 6, 9-12 (hop names)."""
    assert crm.link(ALICE).status == 200
    token = crm.token(ALICE)
    assert crm.post("/get-user", {"Token": token}).status == 200
    crm.sf.expire_access_tokens()
    crm.services.lookup.forget(ALICE)
    answer = crm.post("/get-user", {"Token": token})
    assert answer.status == 200
    hops = _hops(answer)
    # The in-memory tokens were looked at for the cache key already: one hop, before the miss.
    assert hops.count('store;desc="tokens in memory"') == 1
    assert hops.index('store;desc="tokens in memory"') < hops.index('cache;desc="miss"')
    assert hops[hops.index('cache;desc="miss"'):] == [
        'cache;desc="miss"',
        'sfdc-userinfo;desc="Salesforce userinfo"', 'store;desc="token store re-read"',
        'sfdc-refresh;desc="Salesforce token refresh"', 'store;desc="token store write"',
        'sfdc-userinfo;desc="Salesforce userinfo (after refresh)"', "total"]


def test_a_request_that_waited_for_anothers_refresh_says_so(crm):
    """_refresh 3, 4, 6, 9, 12-15 (the concurrent refresh not recognised, or not marked)."""
    assert crm.link(ALICE).status == 200
    token = crm.token(ALICE)
    assert crm.post("/get-user", {"Token": token}).status == 200
    crm.sf.expire_access_tokens()
    crm.services.lookup.forget(ALICE)
    crm.sf.fail_next("token", stall=1.0)   # the first refresh waits at Salesforce ...
    calls, answers = crm.sf.calls["token"], {}
    first = threading.Thread(target=lambda: answers.update(first=crm.post("/get-user", {"Token": token})))
    first.start()
    deadline = time.monotonic() + 10
    while crm.sf.calls["token"] == calls and time.monotonic() < deadline:
        time.sleep(0.01)
    # ... while a second request of the same agent finds its session expired too.
    second = crm.post("/get-contact", {"Token": token, "phone": "(415) 555-0101"})
    first.join(15)
    assert answers["first"].status == 200 and second.status == 200
    assert 'sfdc-refresh;desc="refreshed by a concurrent request"' in _hops(second)
    assert len(crm.sf.refresh_log) == 1


def test_unlink_revokes_the_stored_refresh_token(crm):
    """unlink 13 (revoke called with nothing)."""
    assert crm.link(ALICE).status == 200
    assert crm.sf.live_grants(ALICE) == 1
    assert crm.post("/unlink", {"Token": crm.token(ALICE)}).json() == {"unlinked": True}
    assert crm.sf.live_grants(ALICE) == 0


def test_an_unlink_whose_revoke_fails_logs_who_and_why(crm, caplog):
    """unlink 15, 16, 20, 21 (the operator's log line garbled)."""
    assert crm.link(ALICE).status == 200
    crm.sf.fail_next("revoke", status=500)
    with caplog.at_level(logging.WARNING, logger="sfdcflex"):
        assert crm.post("/unlink", {"Token": crm.token(ALICE)}).status == 200
    assert (f"unlink {ALICE}: Salesforce revoke failed (salesforce_error); deleting the link anyway"
            in caplog.messages)


def test_a_save_that_fails_logs_who_and_why(crm_factory, caplog):
    """_save_unsaved 31, 32, 36, 37, 39 (the operator's log line garbled)."""
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


def test_a_link_gone_from_the_store_says_connect_salesforce(crm_factory):
    """_refresh 37 and _save_unsaved 29 (NotLinked without its message)."""
    one, two = crm_factory(), crm_factory()
    assert one.link(ALICE).status == 200
    token = one.token(ALICE)
    assert two.post("/get-user", {"Token": token}).status == 200
    JsonFileTokenStore(one.store_path).delete(ALICE)
    one.sf.expire_access_tokens()
    two.services.lookup.forget(ALICE)
    answer = two.post("/get-user", {"Token": token})
    assert answer.status == 404 and answer.json() == {"error": "not_linked", "message": NOT_LINKED}


def test_a_fresh_session_refused_at_once_is_a_502_that_says_so(crm):
    """call 26-34 (the error's code or words garbled)."""
    assert crm.link(ALICE).status == 200
    crm.sf.fail_next("userinfo", status=401, count=2)   # refused before and after the refresh
    answer = crm.post("/get-user", {"Token": crm.token(ALICE)})
    assert answer.status == 502
    assert answer.json() == {"error": "salesforce_session_refused",
                             "message": "Salesforce refused a freshly refreshed session; try again later"}
    assert len(crm.sf.refresh_log) == 1   # one refresh, never a loop


def test_a_save_the_disk_refuses_logs_the_os_error(crm, caplog, monkeypatch):
    """_save_unsaved 43, 46 (an OSError without a code logged as None)."""
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
