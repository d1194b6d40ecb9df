"""The Twilio Sync token store over real loopback sockets against the Sync stand-in: documents in
the original plugin's shape, which identities it takes, the refresh lease and used-state items it
makes in Sync, odd documents, what it trusts without asking, the words of its refusals.

Tests that need the in-memory recheck pass `recheck` themselves.
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
from sfdcflex.store import JsonFileTokenStore, RefreshBusy, RevisionConflict, StoreDamaged, StoredTokens
from sfdcflex.sync_store import LEASE_MAP, USED_STATES_MAP, IdentityNotStorable, SyncTokenStore

ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID = "AC" + "6" * 32, "sync-store-auth-token", "IS" + "7" * 32
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

def test_sync_takes_identities_of_1_to_256_characters_not_shaped_like_a_sid_nor_dot_segments(sync, client):
    """Both length bounds hold, a SID-shaped name is refused, and the refusal says why in these words."""
    store = SyncTokenStore(client)
    taken = ["a", "b" * 256, "ET" + "ab" * 16 + "c", "E" + "ab" * 16, "ET" + "ab" * 15 + "ag", "...", ".a"]
    for identity in taken:
        saved = store.put(identity, "access-1", "refresh-1")
        assert store.get(identity) == saved and store.delete(identity) is True
    refused = ["", "c" * 257, "ET" + "ab" * 16, "et" + "AB" * 16, "Zz" + "09" * 16, ".", ".."]
    calls = sum(sync.calls.values())
    for identity in refused:
        for attempt in (lambda: store.get(identity), lambda: store.put(identity, "a", "r"),
                        lambda: store.delete(identity)):
            with pytest.raises(IdentityNotStorable) as raised:
                attempt()
            assert raised.value.status == 403 and raised.value.body() == {
                "error": "identity_not_storable",
                "message": "This Flex identity cannot name a Twilio Sync document (1-256 characters, "
                           "not shaped like a Sync SID, not . or ..), so Salesforce cannot be linked to it"}
    assert sum(sync.calls.values()) == calls      # refused before any Sync call


# --- the refresh lease -----------------------------------------------------------------------

def test_the_refresh_lease_is_a_map_item_keyed_by_a_hash_that_lives_30_seconds(sync, client):
    """The lease lives 30 s, is keyed by a hash (never the identity), names its holder and is given back."""
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
    """A refresh waits a bounded time for another's lease, then gives up with Retry-After; the lease
    is given back, and a waiting refresh then goes on."""
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
    """A used state is kept as long as the state lives; an expired one for 1 s."""
    store = SyncTokenStore(client)
    expires = time.time() + 599.5
    assert store.claim_state("ann", "nonce-a", expires) is True
    assert store.claim_state("ann", "nonce-a", expires) is False
    assert SyncTokenStore(client).claim_state("ann", "nonce-a", expires) is False   # another instance
    assert store.claim_state("ann", "nonce-b", time.time() - 5) is True              # expired already
    assert store.claim_state("ann", "nonce-c", time.time() + 0.2) is True
    forms = _items_made(sync, USED_STATES_MAP)
    assert [(form["Key"], json.loads(form["Data"])) for form in forms] == [
        ("nonce-a", {}), ("nonce-a", {}), ("nonce-a", {}), ("nonce-b", {}), ("nonce-c", {})]
    assert forms[0]["ItemTtl"] == "600" and forms[3]["ItemTtl"] == "1" and forms[4]["ItemTtl"] == "1"


# --- documents Sync answers --------------------------------------------------------------------

def _answer_next_fetch(sync, document: dict) -> None:
    sync.fail_next("fetch", status=200, body=json.dumps(document).encode())


def test_odd_documents_are_refused_or_read_as_they_are(sync, client):
    """Another agent's document and half a pair are refused in these words; a missing revision is None."""
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
    """A conflicting put or delete tells the client to read the tokens again, in these words."""
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
    """An instance trusts only the revision it read or wrote itself, under that agent's name."""
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


@pytest.fixture
def own_sync():
    """A Sync stand-in of the test's own, for tests that count its calls from zero."""
    with SyncStandIn(ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID) as standin:
        yield standin


@pytest.fixture
def sync_store(own_sync):
    client = SyncClient(own_sync.url, SERVICE_SID, ACCOUNT_SID, AUTH_TOKEN, sleep=lambda seconds: None)
    return SyncTokenStore(client)


# --- documents in the original plugin's shape ------------------------------------------------

def test_sync_documents_keep_the_original_plugins_shape(own_sync, sync_store):
    saved = sync_store.put("ada@example.com", "access-1", "refresh-1")
    document = own_sync.documents["ada@example.com"]
    assert document["data"] == {"access_token": "access-1", "refresh_token": "refresh-1"}
    assert saved.revision == document["revision"]
    assert sync_store.get("ada@example.com") == saved
    assert sync_store.delete("ada@example.com") is True
    assert sync_store.get("ada@example.com") is None
    assert sync_store.delete("ada@example.com") is False


def test_sync_put_over_a_document_the_original_wrote_updates_it(own_sync, sync_store):
    client = SyncClient(own_sync.url, SERVICE_SID, ACCOUNT_SID, AUTH_TOKEN)
    client.create_document("ada@example.com", {"access_token": "old-a", "refresh_token": "old-r"})
    assert sync_store.get("ada@example.com").refresh_token == "old-r"
    sync_store.put("ada@example.com", "access-2", "refresh-2")
    assert own_sync.calls["create"] == 2 and own_sync.calls["update"] == 1
    assert sync_store.get("ada@example.com").refresh_token == "refresh-2"


def test_sync_put_with_a_stale_revision_conflicts(sync_store):
    first = sync_store.put("ada@example.com", "access-1", "refresh-1")
    second = sync_store.put("ada@example.com", "access-2", "refresh-2", if_revision=first.revision)
    with pytest.raises(RevisionConflict):
        sync_store.put("ada@example.com", "access-3", "refresh-3", if_revision=first.revision)
    assert sync_store.get("ada@example.com") == second


def test_sync_put_with_a_revision_after_unlink_conflicts(sync_store):
    first = sync_store.put("ada@example.com", "access-1", "refresh-1")
    sync_store.delete("ada@example.com")
    with pytest.raises(RevisionConflict):
        sync_store.put("ada@example.com", "access-2", "refresh-2", if_revision=first.revision)
    assert sync_store.get("ada@example.com") is None


def test_sync_store_rides_out_429(own_sync, sync_store):
    sync_store.put("ada@example.com", "access-1", "refresh-1")
    own_sync.fail_next("fetch", status=429, count=2)
    assert sync_store.get("ada@example.com").access_token == "access-1"
    assert own_sync.calls["fetch"] == 3


def test_a_sync_document_without_tokens_is_damaged(own_sync, sync_store):
    SyncClient(own_sync.url, SERVICE_SID, ACCOUNT_SID, AUTH_TOKEN).create_document("ada@example.com", {"x": 1})
    with pytest.raises(StoreDamaged):
        sync_store.get("ada@example.com")


@pytest.mark.parametrize("identity", ["ann+flex@example.com", "o'brien@example.com", "a b/c@example.com"])
def test_sync_store_round_trips_identities_with_url_special_characters(own_sync, sync_store, identity):
    first = sync_store.put(identity, "access-1", "refresh-1")
    assert sync_store.get(identity).refresh_token == "refresh-1"
    sync_store.put(identity, "access-2", "refresh-2", if_revision=first.revision)
    assert sync_store.get(identity).access_token == "access-2"
    assert identity in own_sync.documents
    assert sync_store.delete(identity) is True and sync_store.get(identity) is None


def test_conditional_delete_only_removes_the_pair_it_names(tmp_path, sync_store):
    for store in (JsonFileTokenStore(tmp_path / "tokens.json"), sync_store):
        first = store.put("ann@example.com", "access-1", "refresh-1")
        second = store.put("ann@example.com", "access-2", "refresh-2")
        with pytest.raises(RevisionConflict):
            store.delete("ann@example.com", if_revision=first.revision)
        assert store.get("ann@example.com").refresh_token == "refresh-2"
        assert store.delete("ann@example.com", if_revision=second.revision) is True
        assert store.get("ann@example.com") is None

def test_sync_is_current_reads_again_after_the_recheck_period(own_sync):
    client = SyncClient(own_sync.url, SERVICE_SID, ACCOUNT_SID, AUTH_TOKEN, sleep=lambda seconds: None)
    mine, theirs = SyncTokenStore(client, recheck=0.2), SyncTokenStore(client)
    held = mine.put("ann@example.com", "access-1", "refresh-1")
    theirs.delete("ann@example.com")
    assert mine.is_current("ann@example.com", held.revision)   # no Sync call within the period
    deadline = time.monotonic() + 5
    while mine.is_current("ann@example.com", held.revision) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not mine.is_current("ann@example.com", held.revision)
    assert mine.get("ann@example.com") is None
