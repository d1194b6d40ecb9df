"""Twilio Sync token store behaviour that mutation testing found unchecked (mutmut 3.8, issue 18),
over real loopback sockets against the Sync stand-in: which identities it takes, the refresh
lease and used-state items it makes in Sync, odd documents, the words of its refusals.

Each test names the surviving mutants it kills; the equivalent ones are listed in README's
reliability report. Tests that need the in-memory recheck pass `recheck` themselves.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest

from sfdcflex.clients.sync import SyncClient, SyncError
from sfdcflex.errors import answer_for
from sfdcflex.demo.standins import SyncStandIn
from sfdcflex.store import RefreshBusy, RevisionConflict, StoreDamaged, StoredTokens
from sfdcflex.sync_store import LEASE_MAP, USED_STATES_MAP, IdentityNotStorable, SyncTokenStore

ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID = "AC" + "6" * 32, "sync-mutants-auth-token", "IS" + "7" * 32
CHANGED = "The agent's Salesforce tokens changed meanwhile; read them again"


class RecordingSyncStandIn(SyncStandIn):
    """Sync that remembers the form of every Map item created: (map path, form)."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.item_forms: list[tuple[str, dict[str, str]]] = []

    def observe(self, name, request):
        if name == "item-create":
            self.item_forms.append((request.path, request.form()))


@pytest.fixture(scope="module")
def sync():
    with RecordingSyncStandIn(ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID) as standin:
        # Both Maps made up front: an item's first create in a new Map is tried twice (404 first).
        client = SyncClient(standin.url, SERVICE_SID, ACCOUNT_SID, AUTH_TOKEN)
        for map_name in (LEASE_MAP, USED_STATES_MAP):
            client.create_map_item(map_name, "setup", {}, 1)
            client.delete_map_item(map_name, "setup")
        yield standin


@pytest.fixture
def client(sync):
    sync.item_forms.clear()
    return SyncClient(sync.url, SERVICE_SID, ACCOUNT_SID, AUTH_TOKEN, retries=0, sleep=lambda seconds: None)


def _items_made(sync, map_name: str) -> list[dict[str, str]]:
    return [form for path, form in sync.item_forms if path.endswith(f"/Maps/{map_name}/Items")]


# --- identities Sync can hold --------------------------------------------------------------

def test_sync_takes_identities_of_1_to_256_characters_not_shaped_like_a_sid(sync, client):
    """check_identity 3-5, 7-13 (the bounds, the refusal's words)."""
    store = SyncTokenStore(client)
    taken = ["a", "b" * 256, "ET" + "ab" * 16 + "c", "E" + "ab" * 16, "ET" + "ab" * 15 + "ag"]
    for identity in taken:
        saved = store.put(identity, "access-1", "refresh-1")
        assert store.get(identity) == saved and store.delete(identity) is True
    refused = ["", "c" * 257, "ET" + "ab" * 16, "et" + "AB" * 16, "Zz" + "09" * 16]
    calls = sum(sync.calls.values())
    for identity in refused:
        for attempt in (lambda: store.get(identity), lambda: store.put(identity, "a", "r"),
                        lambda: store.delete(identity)):
            with pytest.raises(IdentityNotStorable) as raised:
                attempt()
            assert raised.value.status == 403 and raised.value.body() == {
                "error": "identity_not_storable",
                "message": "This Flex identity cannot name a Twilio Sync document (1-256 characters, "
                           "not shaped like a Sync SID), so Salesforce cannot be linked to it"}
    assert sum(sync.calls.values()) == calls      # refused before any Sync call


# --- the refresh lease -----------------------------------------------------------------------

def test_the_refresh_lease_is_a_map_item_keyed_by_a_hash_that_lives_30_seconds(sync, client):
    """__init__ 1 (another lease lifetime). refresh_guard is decorated, so mutmut leaves it alone;
    planted by hand: the identity as key, no holder, no lease given back."""
    store = SyncTokenStore(client)
    key = hashlib.sha256(b"ann@example.com").hexdigest()
    with store.refresh_guard("ann@example.com"):
        assert sync.maps.item_keys(LEASE_MAP) == [key]
    assert sync.maps.item_keys(LEASE_MAP) == []
    (form,) = _items_made(sync, LEASE_MAP)
    assert form["Key"] == key and form["ItemTtl"] == "30"
    holder = json.loads(form["Data"])["holder"]
    assert len(holder) == 16 and int(holder, 16) >= 0


def test_a_refresh_waits_for_the_lease_then_gives_up_with_retry_after(sync, client):
    """Not mutated by mutmut (refresh_guard is decorated); planted by hand: no wait, no deadline,
    no Retry-After, no lease given back."""
    holder, impatient = SyncTokenStore(client), SyncTokenStore(client, lease_wait=0.15)
    patient, entered = SyncTokenStore(client, lease_wait=5), threading.Event()

    def refresh_later() -> None:
        with patient.refresh_guard("bea@example.com"):
            entered.set()

    with holder.refresh_guard("bea@example.com"):
        started = time.monotonic()
        with pytest.raises(RefreshBusy) as raised:
            with impatient.refresh_guard("bea@example.com"):
                pass
        assert 0.15 <= time.monotonic() - started < 2
        assert raised.value.status == 503 and raised.value.body() == {
            "error": "refresh_in_progress",
            "message": "Another instance is refreshing this agent's Salesforce session; try again in a moment"}
        assert {name.lower(): value for name, value in raised.value.headers.items()} == {"retry-after": "1"}
        with impatient.refresh_guard("cid@example.com"):     # another agent is not held up
            pass
        later = threading.Thread(target=refresh_later)
        later.start()
        time.sleep(0.05)
        assert not entered.is_set()
    later.join(5)
    assert entered.is_set()          # the lease given back, the waiting refresh went on
    assert sync.maps.item_keys(LEASE_MAP) == []


# --- used OAuth states -----------------------------------------------------------------------

def test_a_used_state_is_kept_in_sync_until_its_state_expires(sync, client):
    """claim_state 6 (an expired state kept 2 s, not 1)."""
    store = SyncTokenStore(client)
    expires = time.time() + 599.5
    assert store.claim_state("nonce-a", expires) is True
    assert store.claim_state("nonce-a", expires) is False
    assert SyncTokenStore(client).claim_state("nonce-a", expires) is False   # another instance
    assert store.claim_state("nonce-b", time.time() - 5) is True              # expired already
    assert store.claim_state("nonce-c", time.time() + 0.2) is True
    forms = _items_made(sync, USED_STATES_MAP)
    assert [(form["Key"], json.loads(form["Data"])) for form in forms] == [
        ("nonce-a", {}), ("nonce-a", {}), ("nonce-a", {}), ("nonce-b", {}), ("nonce-c", {})]
    assert forms[0]["ItemTtl"] == "600" and forms[3]["ItemTtl"] == "1" and forms[4]["ItemTtl"] == "1"


# --- documents Sync answers --------------------------------------------------------------------

def _answer_next_fetch(sync, document: dict) -> None:
    sync.fail_next("fetch", status=200, body=json.dumps(document).encode())


def test_odd_documents_are_refused_or_read_as_they_are(sync, client):
    """_tokens_from 5-8, 23, 26-29, 40 (the refusals' words, half a pair read, no revision as "None")."""
    store = SyncTokenStore(client)
    good = {"unique_name": "dan@example.com", "data": {"access_token": "a", "refresh_token": "r"}}
    _answer_next_fetch(sync, {**good, "unique_name": "eve@example.com"})
    with pytest.raises(SyncError) as raised:
        store.get("dan@example.com")
    assert answer_for(raised.value).body() == {"error": "sync_error",
                                               "message": "Twilio Sync answered another document than the agent's own"}
    _answer_next_fetch(sync, {**good, "revision": 7})
    assert store.get("dan@example.com") == StoredTokens("a", "r", "7")
    _answer_next_fetch(sync, good)
    assert store.get("dan@example.com") == StoredTokens("a", "r", None)
    for data in ({"access_token": "a"}, {"refresh_token": "r"}, {"access_token": 1, "refresh_token": "r"}):
        _answer_next_fetch(sync, {**good, "data": data})
        with pytest.raises(StoreDamaged) as raised:
            store.get("dan@example.com")
        assert raised.value.body() == {
            "error": "token_store_damaged",
            "message": "The agent's Twilio Sync document does not hold access_token and refresh_token"}


def test_a_conflict_says_to_read_again(client):
    """put 15-20, delete 9-12 (RevisionConflict without its words)."""
    store = SyncTokenStore(client)
    first = store.put("fay@example.com", "access-1", "refresh-1")
    store.put("fay@example.com", "access-2", "refresh-2")
    for attempt in (lambda: store.put("fay@example.com", "a", "r", if_revision=first.revision),
                    lambda: store.delete("fay@example.com", if_revision=first.revision)):
        with pytest.raises(RevisionConflict) as raised:
            attempt()
        assert raised.value.body() == {"error": "store_conflict", "message": CHANGED}
    assert store.delete("fay@example.com") is True
    with pytest.raises(RevisionConflict) as raised:
        store.put("fay@example.com", "a", "r", if_revision=first.revision)
    assert raised.value.body() == {"error": "store_conflict", "message": CHANGED}


# --- what an instance trusts without asking Sync -----------------------------------------------

def test_an_instance_trusts_only_the_revision_it_read_or_wrote_itself(client):
    """get 5, 9, put 22, delete 2 (the revision read or written remembered under another name)."""
    mine, theirs = SyncTokenStore(client, recheck=60), SyncTokenStore(client, recheck=60)
    first = mine.put("gus@example.com", "access-1", "refresh-1")
    assert mine.is_current("gus@example.com", first.revision)
    assert not mine.is_current("gus@example.com", "another revision")
    assert not mine.is_current("hal@example.com", first.revision)     # never read here
    assert not theirs.is_current("gus@example.com", first.revision)
    second = theirs.put("gus@example.com", "access-2", "refresh-2", if_revision=first.revision)
    assert theirs.is_current("gus@example.com", second.revision)      # its own conditional write
    assert mine.get("gus@example.com") == second
    assert mine.is_current("gus@example.com", second.revision)
    assert not mine.is_current("gus@example.com", first.revision)
    theirs.delete("gus@example.com")
    assert mine.get("gus@example.com") is None
    assert not mine.is_current("gus@example.com", second.revision)    # gone: read it again
    third = mine.put("gus@example.com", "access-3", "refresh-3")
    assert mine.delete("gus@example.com") is True
    assert not mine.is_current("gus@example.com", third.revision)
    assert not SyncTokenStore(client, recheck=0).is_current("gus@example.com", None)
    assert SyncTokenStore(client, recheck=60).get("ivy@example.com") is None    # never linked
