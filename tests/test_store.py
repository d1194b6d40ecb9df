"""Token stores: the JSON file (locking, atomic replace, damage) and Twilio Sync documents."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sfdcflex.demo.standins import SyncStandIn
from sfdcflex.store import JsonFileTokenStore, RevisionConflict, StoreDamaged, StoredTokens
from sfdcflex.sync_store import SyncTokenStore
from sfdcflex.clients.sync import SyncClient

REPO = Path(__file__).resolve().parent.parent

WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from sfdcflex.store import JsonFileTokenStore
    store = JsonFileTokenStore(Path(sys.argv[1]))
    prefix, count = sys.argv[2], int(sys.argv[3])
    for i in range(count):
        store.put(f"{prefix}-{i}@example.com", f"access-{prefix}-{i}", f"refresh-{prefix}-{i}")
        print(i, flush=True)
""")


def start_writer(path: Path, prefix: str, count: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), prefix, str(count)],
                            cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def writing_now(folder: Path, path: Path, seeded_size: int) -> bool:
    """A write is under way: a temp file exists, or the file shrank (a non-atomic rewrite)."""
    return any(p.name.endswith(".tmp") for p in folder.iterdir()) or path.stat().st_size < seeded_size


# --- JSON file ---------------------------------------------------------------------------------

def test_put_get_delete_round_trip(tmp_path):
    store = JsonFileTokenStore(tmp_path / "data" / "tokens.json")
    assert store.get("alice@example.com") is None
    saved = store.put("alice@example.com", "access-1", "refresh-1")
    assert saved.revision
    assert store.get("alice@example.com") == saved
    assert store.delete("alice@example.com") is True
    assert store.delete("alice@example.com") is False
    assert store.get("alice@example.com") is None


def test_file_shape_and_modes(tmp_path):
    path = tmp_path / "data" / "tokens.json"
    store = JsonFileTokenStore(path)
    store.put("alice@example.com", "access-1", "refresh-1")
    document = json.loads(path.read_text())
    entry = document["agents"]["alice@example.com"]
    assert document["version"] == 1
    assert entry["access_token"] == "access-1" and entry["refresh_token"] == "refresh-1"
    assert entry["revision"] and entry["updated_at"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_repr_hides_tokens():
    text = repr(StoredTokens("secret-access", "secret-refresh", "r1"))
    assert "secret" not in text and "r1" in text


def test_put_with_stale_revision_conflicts_and_keeps_the_newer_tokens(tmp_path):
    store = JsonFileTokenStore(tmp_path / "tokens.json")
    first = store.put("alice@example.com", "access-1", "refresh-1")
    second = store.put("alice@example.com", "access-2", "refresh-2", if_revision=first.revision)
    with pytest.raises(RevisionConflict) as raised:
        store.put("alice@example.com", "access-3", "refresh-3", if_revision=first.revision)
    assert raised.value.status == 409 and raised.value.code == "store_conflict"
    assert store.get("alice@example.com") == second


def test_put_with_revision_after_delete_conflicts(tmp_path):
    store = JsonFileTokenStore(tmp_path / "tokens.json")
    first = store.put("alice@example.com", "access-1", "refresh-1")
    store.delete("alice@example.com")
    with pytest.raises(RevisionConflict):
        store.put("alice@example.com", "access-2", "refresh-2", if_revision=first.revision)
    assert store.get("alice@example.com") is None


@pytest.mark.parametrize("content", [b"{not json", b'{"version": 1}', b'{"version": 1, "agents": {"a": 3}}',
                                     b"[]", b"\xff\xfe"])
def test_damaged_file_is_an_error_and_left_untouched(tmp_path, content, caplog):
    path = tmp_path / "tokens.json"
    path.write_bytes(content)
    store = JsonFileTokenStore(path)
    for attempt in (lambda: store.get("a"), lambda: store.put("a", "x", "y"), lambda: store.delete("a")):
        with pytest.raises(StoreDamaged) as raised:
            attempt()
        assert raised.value.status == 500 and raised.value.code == "token_store_damaged"
        # The client is never told where the server keeps its files; the operator's log is.
        assert str(tmp_path) not in raised.value.message and str(path) in caplog.text
    assert path.read_bytes() == content


def test_damage_message_never_shows_the_content(tmp_path):
    path = tmp_path / "tokens.json"
    path.write_text('{"version": 1, "agents": {"a": {"access_token": "leaky-secret"}}}')
    with pytest.raises(StoreDamaged) as raised:
        JsonFileTokenStore(path).get("a")
    assert "leaky-secret" not in raised.value.message


@pytest.mark.slow(seconds=3)  # two writer processes
def test_two_processes_writing_different_agents_lose_nothing(tmp_path):
    path = tmp_path / "tokens.json"
    writers = [start_writer(path, prefix, 200) for prefix in ("a", "b")]
    for writer in writers:
        writer.communicate(timeout=60)
        assert writer.returncode == 0
    agents = json.loads(path.read_text())["agents"]
    assert len(agents) == 400
    store = JsonFileTokenStore(path)
    assert store.get("a-199@example.com").refresh_token == "refresh-a-199"
    assert store.get("b-0@example.com").access_token == "access-b-0"


@pytest.mark.slow  # a SIGKILLed writer
def test_writer_killed_mid_writes_leaves_a_file_that_parses(tmp_path):
    path = tmp_path / "tokens.json"
    # A big file makes each write long, so the kill lands inside one.
    seeded = {f"seed-{i}@example.com": {"access_token": "a" * 100, "refresh_token": "r" * 100,
                                        "revision": str(i), "updated_at": "2024-01-01T00:00:00+00:00"}
              for i in range(2000)}
    path.write_text(json.dumps({"version": 1, "agents": seeded}))
    seeded_size = path.stat().st_size
    writer = start_writer(path, "k", 100_000)
    try:
        assert writer.stdout.readline(), "the writer stopped early"
        # Kill while a write is under way, not between two writes.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not writing_now(tmp_path, path, seeded_size):
            pass
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.kill()
        writer.communicate(timeout=10)
    assert writer.returncode == -signal.SIGKILL
    agents = json.loads(path.read_text())["agents"]
    assert len(agents) >= 2001
    assert JsonFileTokenStore(path).get("k-0@example.com").access_token == "access-k-0"


# --- Twilio Sync -------------------------------------------------------------------------------

ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID = "AC" + "4" * 32, "store-test-auth-token", "IS" + "5" * 32


@pytest.fixture
def sync():
    with SyncStandIn(ACCOUNT_SID, AUTH_TOKEN, SERVICE_SID) as standin:
        yield standin


@pytest.fixture
def sync_store(sync):
    client = SyncClient(sync.url, SERVICE_SID, ACCOUNT_SID, AUTH_TOKEN, sleep=lambda seconds: None)
    return SyncTokenStore(client)


def test_sync_documents_keep_the_original_plugins_shape(sync, sync_store):
    saved = sync_store.put("ada@example.com", "access-1", "refresh-1")
    document = sync.documents["ada@example.com"]
    assert document["data"] == {"access_token": "access-1", "refresh_token": "refresh-1"}
    assert saved.revision == document["revision"]
    assert sync_store.get("ada@example.com") == saved
    assert sync_store.delete("ada@example.com") is True
    assert sync_store.get("ada@example.com") is None
    assert sync_store.delete("ada@example.com") is False


def test_sync_put_over_a_document_the_original_wrote_updates_it(sync, sync_store):
    client = SyncClient(sync.url, SERVICE_SID, ACCOUNT_SID, AUTH_TOKEN)
    client.create_document("ada@example.com", {"access_token": "old-a", "refresh_token": "old-r"})
    assert sync_store.get("ada@example.com").refresh_token == "old-r"
    sync_store.put("ada@example.com", "access-2", "refresh-2")
    assert sync.calls["create"] == 2 and sync.calls["update"] == 1
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


def test_sync_store_rides_out_429(sync, sync_store):
    sync_store.put("ada@example.com", "access-1", "refresh-1")
    sync.fail_next("fetch", status=429, count=2)
    assert sync_store.get("ada@example.com").access_token == "access-1"
    assert sync.calls["fetch"] == 3


def test_a_sync_document_without_tokens_is_damaged(sync, sync_store):
    SyncClient(sync.url, SERVICE_SID, ACCOUNT_SID, AUTH_TOKEN).create_document("ada@example.com", {"x": 1})
    with pytest.raises(StoreDamaged):
        sync_store.get("ada@example.com")


@pytest.mark.parametrize("identity", ["ann+flex@example.com", "o'brien@example.com", "a b/c@example.com"])
def test_sync_store_round_trips_identities_with_url_special_characters(sync, sync_store, identity):
    first = sync_store.put(identity, "access-1", "refresh-1")
    assert sync_store.get(identity).refresh_token == "refresh-1"
    sync_store.put(identity, "access-2", "refresh-2", if_revision=first.revision)
    assert sync_store.get(identity).access_token == "access-2"
    assert identity in sync.documents
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


def test_is_current_sees_a_write_by_another_process_at_once(tmp_path):
    path = tmp_path / "tokens.json"
    mine, theirs = JsonFileTokenStore(path), JsonFileTokenStore(path)
    held = mine.put("ann@example.com", "access-1", "refresh-1")
    assert mine.is_current("ann@example.com", held.revision)
    theirs.put("bob@example.com", "access-b", "refresh-b")     # any write restamps the file
    assert not mine.is_current("ann@example.com", held.revision)
    assert mine.get("ann@example.com") == held                 # one read confirms it again
    assert mine.is_current("ann@example.com", held.revision)
    theirs.delete("ann@example.com")
    assert not mine.is_current("ann@example.com", held.revision) and mine.get("ann@example.com") is None


def test_sync_is_current_reads_again_after_the_recheck_period(sync):
    client = SyncClient(sync.url, SERVICE_SID, ACCOUNT_SID, AUTH_TOKEN, sleep=lambda seconds: None)
    mine, theirs = SyncTokenStore(client, recheck=0.2), SyncTokenStore(client)
    held = mine.put("ann@example.com", "access-1", "refresh-1")
    theirs.delete("ann@example.com")
    assert mine.is_current("ann@example.com", held.revision)   # no Sync call within the period
    deadline = time.monotonic() + 5
    while mine.is_current("ann@example.com", held.revision) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not mine.is_current("ann@example.com", held.revision)
    assert mine.get("ann@example.com") is None


def test_used_states_are_shared_through_the_file_until_they_expire(tmp_path):
    path = tmp_path / "tokens.json"
    mine, theirs = JsonFileTokenStore(path), JsonFileTokenStore(path)
    later = time.time() + 600
    assert mine.claim_state("nonce-1", later) is True
    assert theirs.claim_state("nonce-1", later) is False and mine.claim_state("nonce-1", later) is False
    assert mine.claim_state("spent", time.time() - 1) is True      # its state has expired already
    assert theirs.claim_state("nonce-2", later) is True
    assert set(json.loads(path.read_text())["used_states"]) == {"nonce-1", "nonce-2"}
