"""The JSON token store: locking, atomic replace, damage and its words, group commit, failed
writes. (Its link stamp: test_store_stamp.py; the start-up check of its folder:
test_store_folder_check.py; its used OAuth states: test_used_states.py; the Sync store:
test_sync_store.py.)"""
from __future__ import annotations

import json
import logging
import os
import signal
import stat
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from sfdcflex.store import JsonFileTokenStore, RevisionConflict, StoreDamaged, StoredTokens
from tests.support.store_writers import start_writer, writing_now

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

ANN, BOB = "ann@example.com", "bob@example.com"
CHANGED = "The agent's Salesforce tokens changed meanwhile; read them again"
DAMAGED = "The token store is damaged; an operator must repair it"


# --- the words of refusals, for the client and for the operator --------------------------------

def test_a_conflict_says_to_read_again(tmp_path):
    """A conflicting put or delete tells the client to read the tokens again, in these words."""
    store = JsonFileTokenStore(tmp_path / "tokens.json")
    first = store.put(ANN, "access-1", "refresh-1")
    store.put(ANN, "access-2", "refresh-2")
    with pytest.raises(RevisionConflict) as raised:
        store.put(ANN, "access-3", "refresh-3", if_revision=first.revision)
    assert raised.value.body() == {"error": "store_conflict", "message": CHANGED}
    with pytest.raises(RevisionConflict) as raised:
        store.delete(ANN, if_revision=first.revision)
    assert raised.value.body() == {"error": "store_conflict", "message": CHANGED}


def test_a_damaged_file_tells_the_client_little_and_the_operator_what_to_do(tmp_path, caplog):
    """The client is told the store is damaged; the operator's log line says what to do."""
    path = tmp_path / "tokens.json"
    path.write_text("[]")
    with caplog.at_level(logging.ERROR, logger="sfdcflex"), pytest.raises(StoreDamaged) as raised:
        JsonFileTokenStore(path).get(ANN)
    assert raised.value.body() == {"error": "token_store_damaged", "message": DAMAGED}
    assert caplog.messages == [
        f'the token store {path} does not hold {{"version": 1, "agents": {{...}}}}; it was left '
        "untouched: repair it or move it away (agents must then link again)"]


SHAPE = 'does not hold {"version": 1, "agents": {...}}'
ENTRY = "has an agent entry without access_token, refresh_token and revision"
GOOD_ENTRY = {"access_token": "a", "refresh_token": "r", "revision": "1"}


@pytest.mark.parametrize("document, reason", [
    ('{"version": 1, "agents": {}', "is not valid JSON"),
    ({"version": 2, "agents": {}}, SHAPE),
    ({"version": 1, "agents": []}, SHAPE),
    ({"version": 1, "agents": {ANN: {**GOOD_ENTRY, "revision": 1}}}, ENTRY),
    ({"version": 1, "agents": {ANN: {**GOOD_ENTRY, "refresh_token": None}}}, ENTRY),
])
def test_each_kind_of_damage_is_named_in_the_log(tmp_path, caplog, document, reason):
    """Each kind of damage is refused and named in the operator's log."""
    path = tmp_path / "tokens.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    with caplog.at_level(logging.ERROR, logger="sfdcflex"), pytest.raises(StoreDamaged):
        JsonFileTokenStore(path).get(ANN)
    assert caplog.messages == [f"the token store {path} {reason}; it was left untouched: repair it or "
                               "move it away (agents must then link again)"]


def test_a_refresh_lock_folder_left_open_is_made_private_at_start(tmp_path):
    """An existing refresh-lock folder is made private when the store opens."""
    path = tmp_path / "store" / "tokens.json"
    locks = tmp_path / "store" / ".tokens.json.refresh-locks"
    locks.mkdir(parents=True)
    locks.chmod(0o777)
    JsonFileTokenStore(path)
    assert stat.S_IMODE(locks.stat().st_mode) == 0o700


# --- what the file records ------------------------------------------------------------------

def test_each_entry_records_when_it_was_written_in_utc(tmp_path):
    """updated_at is written in UTC, with its offset."""
    path = tmp_path / "tokens.json"
    JsonFileTokenStore(path).put(ANN, "access-1", "refresh-1")
    written = datetime.fromisoformat(json.loads(path.read_text())["agents"][ANN]["updated_at"])
    assert written.utcoffset() == timedelta(0)


# --- group commit ----------------------------------------------------------------------------

def test_a_stale_save_written_together_with_others_does_not_stop_them(tmp_path):
    """A conflict in a batch of saves written together stops only the stale save."""
    store = JsonFileTokenStore(tmp_path / "tokens.json")
    first = store.put(ANN, "access-1", "refresh-1")
    store.put(ANN, "access-2", "refresh-2")
    outcomes: dict[str, object] = {}

    def save(name: str, identity: str, **kwargs) -> None:
        try:
            outcomes[name] = store.put(identity, f"access-{name}", f"refresh-{name}", **kwargs)
        except RevisionConflict as error:
            outcomes[name] = error

    # While a write is under way (its lock held here), two saves arrive and queue up; the
    # first of them to get the lock writes both at once, the stale one first.
    threads = []
    with store._thread_lock:
        for name, identity, kwargs in (("stale", ANN, {"if_revision": first.revision}), ("bob", BOB, {})):
            threads.append(threading.Thread(target=save, args=(name, identity), kwargs=kwargs))
            threads[-1].start()
            deadline = time.monotonic() + 5
            while len(store._pending) < len(threads) and time.monotonic() < deadline:
                time.sleep(0.001)
        assert len(store._pending) == 2
    for thread in threads:
        thread.join(5)
    assert isinstance(outcomes["stale"], RevisionConflict)
    assert outcomes["bob"] == store.get(BOB) and store.get(BOB).refresh_token == "refresh-bob"
    assert store.get(ANN).refresh_token == "refresh-2"


def test_each_write_swaps_in_a_hidden_temp_file_from_the_token_files_own_folder(tmp_path, monkeypatch):
    """The temp file is made beside the token file and named for it: a rename is atomic only
    within one file system, and a crash's leftover is known by its name."""
    path = tmp_path / "store" / "tokens.json"
    store = JsonFileTokenStore(path)
    swapped, replace = [], os.replace

    def spy(source, target):
        swapped.append((Path(source), Path(target)))
        replace(source, target)

    monkeypatch.setattr("sfdcflex.store.os.replace", spy)
    store.put(ANN, "access-1", "refresh-1")
    ((temp, target),) = swapped
    assert target == path and temp.parent == path.parent
    assert temp.name.startswith(".tokens.json.") and temp.name.endswith(".tmp")


# --- a write that fails, and writes at once -----------------------------------------------------

def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    """The disk's own error reaches the caller, the temp file is gone, and the lock file keeps its
    name (processes of two versions sharing the file must lock each other out)."""
    path = tmp_path / "tokens.json"
    store = JsonFileTokenStore(path)
    store.put(ANN, "access-1", "refresh-1")
    before = path.read_bytes()

    def full_disk(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("sfdcflex.store.os.replace", full_disk)
    with pytest.raises(OSError) as raised:
        store.put(ANN, "access-2", "refresh-2")
    assert raised.value.errno == 28
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.json", "tokens.json.lock"]
    monkeypatch.undo()
    assert store.get(ANN).refresh_token == "refresh-1"


def test_concurrent_saves_are_written_together_and_none_is_lost(tmp_path):
    store = JsonFileTokenStore(tmp_path / "tokens.json")
    start = threading.Barrier(12)
    results: dict[int, object] = {}

    def save(n: int) -> None:
        start.wait(5)
        results[n] = store.put(f"agent-{n}@example.com", f"access-{n}", f"refresh-{n}")

    threads = [threading.Thread(target=save, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(results) == 12
    for n, saved in results.items():
        assert store.get(f"agent-{n}@example.com") == saved
