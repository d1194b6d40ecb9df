"""JSON token store behaviour that mutation testing found unchecked (mutmut 3.8, issue 18): the
start-up check of the store's folder, the words of its refusals, what the file records.

Each test names the surviving mutants it kills; the equivalent ones are listed in README's
reliability report.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from sfdcflex.runtime.errors import TooManyRequests
from sfdcflex.store import (MAX_USED_STATES, JsonFileTokenStore, RevisionConflict, StoreDamaged,
                            store_file_problems)

ANN, BOB = "ann@example.com", "bob@example.com"
CHANGED = "The agent's Salesforce tokens changed meanwhile; read them again"
DAMAGED = "The token store is damaged; an operator must repair it"
NOBODY = 65534


# --- store_file_problems: what `run.py --check` and start-up say about TOKEN_STORE_PATH ----------

def test_a_folder_that_can_be_created_is_no_problem_and_is_not_created(tmp_path):
    """store_file_problems 5-7, 9-14 (a creatable folder refused, or the check crashing)."""
    path = tmp_path / "one" / "two" / "tokens.json"
    assert store_file_problems(path) == []
    assert list(tmp_path.iterdir()) == []


def test_a_folder_under_a_file_cannot_be_created(tmp_path):
    """store_file_problems 5-9 (the blocking file not found, or let through when executable)."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    blocker.chmod(0o755)     # executable, so only "not a folder" can refuse it (root may write anything)
    folder = blocker / "store"
    assert store_file_problems(folder / "tokens.json") == [
        f"config: TOKEN_STORE_PATH: the folder {folder} does not exist and cannot be created "
        f"({blocker} is not a writable folder)"]


def test_an_absent_token_file_is_checked_without_creating_anything(tmp_path):
    """store_file_problems 23 (the check opens a store, which makes its lock file)."""
    (tmp_path / "store").mkdir()
    assert store_file_problems(tmp_path / "store" / "tokens.json") == []
    assert list((tmp_path / "store").iterdir()) == []


def test_a_damaged_token_file_is_a_problem_unless_the_file_is_not_used(tmp_path, caplog):
    """store_file_problems 1 (with_file off by default), 5, 23, 24 (the check crashing)."""
    path = tmp_path / "tokens.json"
    path.write_text("{damaged")
    assert store_file_problems(path) == [f"config: TOKEN_STORE_PATH: {DAMAGED}"]
    assert f"the token store {path} is not valid JSON" in caplog.text
    assert store_file_problems(path, with_file=False) == []   # the Sync store keeps only its secret here


def _problems_as_another_user(path: Path) -> list[str]:
    """store_file_problems(path) as a user who may not write the folders root made 0755.

    os.access asks about the real user, and root may write anything: as root, a forked child
    takes user id 65534 first. Otherwise the caller's folder is made read-only (0555)."""
    if os.geteuid() != 0:
        return store_file_problems(path)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:   # pragma: no cover (the child)
        code = 1
        try:
            os.close(read)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.write(write, json.dumps(store_file_problems(path)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return json.loads(answer)


def test_a_folder_the_user_may_not_write_is_a_problem_for_that_user():
    """store_file_problems 15, 22 (`W_OK & X_OK` is 0: only asks whether the folder exists)."""
    # Not under pytest's tmp_path: another user must be able to reach it (it is 0700).
    top = Path(tempfile.mkdtemp(prefix="sfdcflex-store-check-"))
    try:
        folder = top / "store"
        folder.mkdir()
        for made in (top, folder):
            made.chmod(0o755 if os.geteuid() == 0 else 0o555)
        if os.geteuid() == 0:   # root may write anything: fine for root itself
            assert store_file_problems(folder / "tokens.json") == []
        assert _problems_as_another_user(folder / "tokens.json") == [
            f"config: TOKEN_STORE_PATH: the folder {folder} is not writable by this user"]
        assert _problems_as_another_user(folder / "more" / "tokens.json") == [
            f"config: TOKEN_STORE_PATH: the folder {folder / 'more'} does not exist and cannot be "
            f"created ({folder} is not a writable folder)"]
    finally:
        for made in (top, top / "store"):
            if made.exists():
                made.chmod(0o700)
        shutil.rmtree(top)


# --- the words of refusals, for the client and for the operator --------------------------------

def test_a_conflict_says_to_read_again(tmp_path):
    """_commit 20-23, delete 14-17 (RevisionConflict without its words)."""
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
    """_damaged 3, 7, 9, 10, 12-14, _read 24 (the log line or the answer garbled)."""
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
USED = "has used_states that are not {nonce: expiry}"
GOOD_ENTRY = {"access_token": "a", "refresh_token": "r", "revision": "1"}


@pytest.mark.parametrize("document, reason", [
    ('{"version": 1, "agents": {}', "is not valid JSON"),
    ({"version": 2, "agents": {}}, SHAPE),
    ({"version": 1, "agents": []}, SHAPE),
    ({"version": 1, "agents": {ANN: {**GOOD_ENTRY, "revision": 1}}}, ENTRY),
    ({"version": 1, "agents": {ANN: {**GOOD_ENTRY, "refresh_token": None}}}, ENTRY),
    ({"version": 1, "agents": {}, "used_states": [600.0]}, USED),
    ({"version": 1, "agents": {}, "used_states": {"nonce": "600"}}, USED),
])
def test_each_kind_of_damage_is_named_in_the_log(tmp_path, caplog, document, reason):
    """_read 12-15, 24, 37-39, 41, 45-47, 51-53 (damage let through, or named wrongly)."""
    path = tmp_path / "tokens.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    with caplog.at_level(logging.ERROR, logger="sfdcflex"), pytest.raises(StoreDamaged):
        JsonFileTokenStore(path).get(ANN)
    assert caplog.messages == [f"the token store {path} {reason}; it was left untouched: repair it or "
                               "move it away (agents must then link again)"]


def test_a_refresh_lock_folder_left_open_is_made_private_at_start(tmp_path):
    """__init__ 20 (the existing refresh-lock folder not secured; the everyday suite kills it too)."""
    path = tmp_path / "store" / "tokens.json"
    locks = tmp_path / "store" / ".tokens.json.refresh-locks"
    locks.mkdir(parents=True)
    locks.chmod(0o777)
    JsonFileTokenStore(path)
    assert stat.S_IMODE(locks.stat().st_mode) == 0o700


# --- what the file records ------------------------------------------------------------------

def test_each_entry_records_when_it_was_written_in_utc(tmp_path):
    """_commit 5 (updated_at in local time, without its offset)."""
    path = tmp_path / "tokens.json"
    JsonFileTokenStore(path).put(ANN, "access-1", "refresh-1")
    written = datetime.fromisoformat(json.loads(path.read_text())["agents"][ANN]["updated_at"])
    assert written.utcoffset() == timedelta(0)


# --- used OAuth states -----------------------------------------------------------------------

def test_at_most_ten_thousand_sign_ins_are_under_way_at_once(tmp_path):
    """claim_state 14 (one more than MAX_USED_STATES let in), 15-22, 25 (the 429 without its
    words or its Retry-After)."""
    path = tmp_path / "tokens.json"
    later = time.time() + 600
    used = {f"nonce-{n}": later for n in range(MAX_USED_STATES - 1)}
    path.write_text(json.dumps({"version": 1, "agents": {}, "used_states": used}))
    store = JsonFileTokenStore(path)
    assert store.claim_state("one-more", later) is True          # the 10,000th
    with pytest.raises(TooManyRequests) as raised:
        store.claim_state("too-many", later)
    # Header names are case-insensitive in HTTP: only the name's letters and the value count.
    assert raised.value.status == 429
    assert {name.lower(): value for name, value in raised.value.headers.items()} == {"retry-after": "60"}
    assert raised.value.body() == {
        "error": "too_many_requests",
        "message": "Too many Salesforce sign-ins at once; try again in a few minutes"}
    assert len(json.loads(path.read_text())["used_states"]) == MAX_USED_STATES


# --- group commit ----------------------------------------------------------------------------

def test_a_stale_save_written_together_with_others_does_not_stop_them(tmp_path):
    """_commit 24 (`break` at the first conflict: the saves after it in the batch are lost)."""
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
    """_write 3-10 (the temp file made in the system's temp folder, or named otherwise): a rename
    is atomic only within one file system, and a crash's leftover is known by its name."""
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
