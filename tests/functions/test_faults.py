"""Faults injected at the stand-ins: each gives the documented status and message, retries only
where a retry is safe, and never loses or corrupts the tokens in the store."""
from __future__ import annotations

import json
import threading
import time

import pytest

from tests.support.processes import wait_until

ALICE, BOB = "alice@example.com", "bob@example.com"
ADA = "+14155550101"            # Ada Lovelace, in the search index
MARY = "+12125550103"           # Mary Mobile
HTML_PAGE = b"<html><head><title>503</title></head><body><h1>Service Unavailable</h1></body></html>"


def _json_entry(crm, identity: str = ALICE) -> dict | None:
    return json.loads(crm.store_path.read_text())["agents"].get(identity)


def _sync_data(crm, identity: str = ALICE) -> dict | None:
    document = crm.sync.documents.get(identity)
    return document and {**document["data"], "revision": document["revision"]}


def _error(answer, status: int, code: str) -> str:
    """Assert the documented error shape and return the message."""
    assert answer.status == status, answer.body
    assert answer.headers["Content-Type"].startswith("application/json")
    body = answer.json()
    assert body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    assert "Traceback" not in body["message"] and "<" not in body["message"]
    return body["message"]


@pytest.fixture
def linked(crm):
    crm.link(ALICE)
    crm.link(BOB)
    return crm


def _contact(crm, phone: str = ADA, who: str = ALICE, token: str | None = None):
    return crm.post("/get-contact", {"Token": token or crm.token(who), "phone": phone}, timeout=20)


# --- Salesforce -------------------------------------------------------------------------------

@pytest.mark.parametrize("fault,words", [
    ({"status": 503}, ("503", "SERVER_UNAVAILABLE")),
    ({"status": 503, "body": HTML_PAGE, "content_type": "text/html"}, ("503", "unexpected body")),
    ({"status": 500, "body": b"<html>oops</html>", "content_type": "text/html;charset=UTF-8"}, ("500",)),
    ({"reset": True}, ("connection failed", "reset")),
])
def test_salesforce_search_failure_is_one_call_a_502_and_the_tokens_stay(linked, fault, words):
    before, searches = _json_entry(linked), linked.sf.calls["search"]
    # The kept-alive connections are gone (as after a server's idle timeout), so the search goes
    # out on a fresh connection, where a failure is never retried.
    linked.sf.drop_connections()
    opened = linked.sf.connections_accepted
    linked.sf.fail_next("search", **fault)
    message = _error(_contact(linked), 502, "salesforce_error")
    assert all(word in message for word in words), message
    # A failed search is not retried (the next request will be) and its failure is not cached.
    assert linked.sf.calls["search"] == searches + 1
    assert linked.sf.connections_accepted == opened + 1
    assert _json_entry(linked) == before
    again = _contact(linked)
    assert again.status == 200 and again.json()["cust_name"] == "Ada Lovelace"


def _search_answer(**record) -> bytes:
    return json.dumps({"searchRecords": [{"Id": "003000000000001AAA", "Phone": "(415) 555-0101",
                                          **record}]}).encode()


@pytest.mark.parametrize("body,words", [
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (_search_answer(attributes="Contact"), "attributes is not an object"),
    (_search_answer(attributes={"type": ["Contact"]}, Account="Analytical Engines"), "Account is not an object"),
], ids=["nested-100000-deep", "attributes-a-string", "account-a-string"])
def test_a_salesforce_answer_this_server_cannot_use_is_a_502_not_a_crash(linked, body, words):
    """A hostile or broken upstream's answer (absurdly nested, a nested object that is not one)
    is 502 with a clear message, never a 500 with a traceback."""
    linked.sf.fail_next("search", status=200, body=body)
    message = _error(_contact(linked), 502, "salesforce_error")
    assert words in message, message


def test_a_search_reset_on_a_reused_connection_is_sent_once_more_on_a_fresh_one(linked):
    assert _contact(linked, MARY).status == 200  # leaves a kept-alive connection to Salesforce
    searches, opened = linked.sf.calls["search"], linked.sf.connections_accepted
    linked.sf.fail_next("search", reset=True)
    answer = _contact(linked)
    assert answer.status == 200 and answer.json()["cust_name"] == "Ada Lovelace"
    assert linked.sf.calls["search"] == searches + 2  # the dropped one, then one retry
    assert linked.sf.connections_accepted == opened + 1
    linked.sf.fail_next("search", reset=True, count=2)  # dead on the retry too: one retry only
    message = _error(_contact(linked, "+14155550199"), 502, "salesforce_error")
    assert "reset" in message and linked.sf.calls["search"] == searches + 4


def test_the_salesforce_client_gives_up_before_the_runtime_limit():
    import inspect
    from sfdcflex.clients.salesforce import SalesforceClient
    from sfdcflex.runtime.app import Limits
    # 8 s, so a stalled Salesforce is the client's 502 with its reason, before the runtime's 504.
    assert inspect.signature(SalesforceClient).parameters["timeout"].default == 8.0 < Limits().timeout


@pytest.mark.slow  # a stall of seconds
def test_a_stalled_salesforce_is_a_502_within_the_client_timeout_and_blocks_no_one_else(linked, monkeypatch):
    # The production timeout is 8 s (the test above); 0.6 s here shows the same behaviour sooner.
    monkeypatch.setattr(linked.services.salesforce, "_timeout", 0.6)
    bob_token = linked.token(BOB)
    assert _contact(linked, MARY, token=bob_token).status == 200  # Bob's answer is now cached
    before = _json_entry(linked)
    linked.sf.fail_next("search", stall=4)
    outcome: dict = {}

    def stalled() -> None:
        started = time.monotonic()
        outcome["answer"] = _contact(linked)
        outcome["seconds"] = time.monotonic() - started

    waiter = threading.Thread(target=stalled)
    waiter.start()
    assert wait_until(lambda: linked.sf.calls["search"] >= 2, 5)  # Alice's request is now stalled
    for _ in range(10):
        started = time.monotonic()
        assert _contact(linked, MARY, token=bob_token).status == 200
        assert time.monotonic() - started < 0.3
    assert waiter.is_alive()   # all 10 were served while Alice's request was still stalled
    waiter.join(15)
    # The Salesforce client gives up at its timeout, before the runtime's 10 s limit would answer 504.
    message = _error(outcome["answer"], 502, "salesforce_error")
    assert "did not answer in 0.6 s" in message
    assert 0.55 <= outcome["seconds"] < 2.0, outcome["seconds"]
    assert _json_entry(linked) == before


def test_a_search_answer_trickling_in_is_a_502_at_the_client_timeout_and_frees_the_slot(linked, monkeypatch):
    """An upstream sending its answer a byte at a time cannot keep a request (and its
    concurrency slot) past the client's time limit: the limit bounds the whole call."""
    monkeypatch.setattr(linked.services.salesforce, "_timeout", 0.2)
    linked.sf.fail_next("search", trickle=0.05)
    started = time.monotonic()
    message = _error(_contact(linked), 502, "salesforce_error")
    assert "did not answer in 0.2 s" in message
    assert time.monotonic() - started < 1.5
    assert _contact(linked).status == 200


@pytest.mark.parametrize("fault", [{"status": 503}, {"reset": True},
                                   {"status": 500, "body": HTML_PAGE, "content_type": "text/html"}])
def test_a_failed_refresh_is_not_retried_and_keeps_the_old_tokens(linked, fault):
    token = linked.token(ALICE)
    assert linked.post("/get-user", {"Token": token}).status == 200
    before, refreshes = _json_entry(linked), len(linked.sf.refresh_log)
    token_calls = linked.sf.calls["token"]
    linked.sf.expire_access_tokens()
    linked.sf.fail_next("token", **fault)
    _error(_contact(linked, token=token), 502, "salesforce_error")
    # Salesforce rotates refresh tokens, so a refresh is never sent twice for one request.
    assert linked.sf.calls["token"] == token_calls + 1
    assert _json_entry(linked) == before
    assert len(linked.sf.refresh_log) == refreshes  # the fault came before Salesforce rotated
    recovered = _contact(linked, token=token)
    assert recovered.status == 200, recovered.body
    log = linked.sf.refresh_log
    assert len(log) == refreshes + 1 and len(set(log)) == len(log)
    assert _json_entry(linked)["refresh_token"] not in log


# --- Twilio IAM --------------------------------------------------------------------------------

def test_iam_down_is_502_and_tokens_validated_before_keep_working(linked):
    known = linked.token(BOB)
    assert _contact(linked, MARY, token=known).status == 200
    before = _json_entry(linked)
    linked.iam.stop()
    message = _error(_contact(linked, MARY, token=linked.token(ALICE)), 502, "iam_unavailable")
    assert "Twilio IAM" in message and "refused" in message
    # IAM's positive answer is cached for up to 5 minutes: an outage does not stop a known agent.
    assert _contact(linked, MARY, token=known).status == 200
    assert _json_entry(linked) == before


@pytest.mark.parametrize("fault", [{"status": 503}, {"status": 500, "body": HTML_PAGE,
                                                     "content_type": "text/html"}, {"reset": True}])
def test_iam_failure_is_one_call_and_a_502(linked, fault):
    calls = linked.iam.calls["validate"]
    linked.iam.drop_connections()  # a fresh connection: its failure is never retried
    linked.iam.fail_next("validate", **fault)
    _error(_contact(linked), 502, "iam_unavailable")
    assert linked.iam.calls["validate"] == calls + 1
    assert _contact(linked).status == 200


# --- Twilio Sync --------------------------------------------------------------------------------

@pytest.fixture
def sync_pair(crm_factory):
    """Two instances on one Sync service; Alice linked through the first. Their Sync clients
    back off 20 ms at first, not 200 ms: these tests count retries (the delays are
    tests/clients/test_sync.py's), and the real waits cost the suite seconds."""
    one, two = crm_factory(TOKEN_STORE="sync"), crm_factory(TOKEN_STORE="sync")
    for crm in (one, two):
        crm.services.keeper.store._client._backoff = 0.02
    one.link(ALICE)
    return one, two


@pytest.mark.slow  # Sync's real back-off waits
def test_sync_429_is_retried_then_succeeds(sync_pair):
    one, two = sync_pair
    fetches = one.sync.calls["fetch"]
    one.sync.fail_next("fetch", status=429, count=2)
    answer = two.post("/get-user", {"Token": two.token(ALICE)})
    assert answer.status == 200 and answer.json()["sfdc_username"] == ALICE
    assert one.sync.calls["fetch"] == fetches + 3


@pytest.mark.slow  # Sync's real back-off waits
def test_sync_429_while_saving_a_refresh_is_retried_and_the_new_tokens_are_saved(sync_pair):
    one, _ = sync_pair
    token = one.token(ALICE)
    assert one.post("/get-user", {"Token": token}).status == 200
    updates = one.sync.calls["update"]
    one.sf.expire_access_tokens()
    one.sync.fail_next("update", status=429)
    assert _contact(one, token=token).status == 200
    assert one.sync.calls["update"] == updates + 2
    assert _sync_data(one)["refresh_token"] not in one.sf.refresh_log


@pytest.mark.slow  # Sync's real back-off waits
def test_sync_500_that_persists_is_a_bounded_502_and_the_document_stays(sync_pair):
    one, two = sync_pair
    before, fetches = _sync_data(one), one.sync.calls["fetch"]
    one.sync.fail_next("fetch", status=500, count=4)
    message = _error(two.post("/get-user", {"Token": two.token(ALICE)}), 502, "sync_unavailable")
    assert "4 attempts" in message
    assert one.sync.calls["fetch"] == fetches + 4  # 1 + 3 retries with backoff, then give up
    assert _sync_data(one) == before
    assert two.post("/get-user", {"Token": two.token(ALICE)}).status == 200


@pytest.mark.slow  # Sync's real back-off waits
def test_sync_412_when_the_agent_relinks_during_a_refresh_keeps_the_new_link(sync_pair):
    one, two = sync_pair
    token = two.token(ALICE)
    assert two.post("/get-user", {"Token": token}).status == 200  # two holds the first link
    two.sf.expire_access_tokens()
    updates = one.sync.calls["update"]
    # Hold two's If-Match write back until Alice has linked again through one.
    held = threading.Event()
    one.sync.fail_next("update", hold=held)
    outcome: dict = {}
    refresher = threading.Thread(target=lambda: outcome.update(answer=_contact(two, token=token)))
    refresher.start()
    assert wait_until(lambda: one.sync.calls["update"] > updates, 5)
    assert one.link(ALICE).status == 200
    relinked = _sync_data(one)
    held.set()
    refresher.join(10)
    assert outcome["answer"].status == 200, outcome["answer"].body  # 412, re-read, used the new link
    assert _sync_data(one) == relinked
    assert one.post("/get-user", {"Token": token}).status == 200
    log = one.sf.refresh_log
    assert len(set(log)) == len(log)


@pytest.mark.slow  # Sync's real back-off waits
def test_sync_failing_while_a_refresh_is_saved_does_not_lose_the_link(sync_pair):
    one, _ = sync_pair
    token = one.token(ALICE)
    assert one.post("/get-user", {"Token": token}).status == 200
    one.sf.expire_access_tokens()
    # Salesforce rotates the refresh token, then every attempt to save the new pair fails.
    one.sync.fail_next("update", status=500, count=4)
    first = _contact(one, token=token)
    if first.status != 200:  # answering with the new, unsaved tokens would be fine too
        _error(first, 502, "sync_unavailable")
    # Sync is back. The agent must still be linked, and the spent refresh token never sent again
    # (Salesforce revokes the whole chain when a rotated-out refresh token is reused).
    answer = _contact(one, MARY, token=token)
    log = one.sf.refresh_log
    assert len(set(log)) == len(log), "a rotated-out refresh token was sent to Salesforce again"
    assert answer.status == 200, answer.body
    assert _sync_data(one)["refresh_token"] not in log


def test_a_second_expiry_while_sync_is_still_down_refreshes_from_the_unsaved_pair(sync_pair):
    one, _ = sync_pair
    token = one.token(ALICE)
    assert one.post("/get-user", {"Token": token}).status == 200
    one.sf.expire_access_tokens()
    one.sync.fail_next("update", status=400, count=3)   # three saves fail (a 400 is not retried)
    assert _contact(one, token=token).status == 200        # refreshed; the new pair only in memory
    one.sf.expire_access_tokens()
    assert _contact(one, MARY, token=token).status == 200  # refreshed again, from that unsaved pair
    log = one.sf.refresh_log
    assert len(log) == 2 and len(set(log)) == 2, "a spent refresh token was sent again"
    assert one.post("/get-user", {"Token": token}).status == 200   # Sync is back: saved now
    assert _sync_data(one)["refresh_token"] not in log


def test_a_link_dropped_elsewhere_while_trusted_here_is_not_linked_at_the_refresh(crm_factory):
    one = crm_factory(TOKEN_STORE="sync", SYNC_LINK_RECHECK="60")   # trusts its read for 60 s
    two = crm_factory(TOKEN_STORE="sync")
    one.link(ALICE)
    token = one.token(ALICE)
    assert one.post("/get-user", {"Token": token}).status == 200
    assert two.post("/unlink", {"Token": token}).status == 200   # revoked at Salesforce, deleted
    refreshes = len(one.sf.refresh_log)
    _error(_contact(one, MARY, token=token), 404, "not_linked")   # 401, then the store says gone
    assert len(one.sf.refresh_log) == refreshes   # no refresh was tried for a link that is gone
