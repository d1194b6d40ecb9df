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
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from sfdcflex.store import JsonFileTokenStore, RevisionConflict, StoreDamaged, store_file_problems

ANN = "ann@example.com"
CHANGED = "The agent's Salesforce tokens changed meanwhile; read them again"
DAMAGED = "The token store is damaged; an operator must repair it"
NOBODY = 65534


# --- store_file_problems: what `run.py --check` and start-up say about TOKEN_STORE_PATH ----------

def test_a_folder_that_can_be_created_is_no_problem_and_is_not_created(tmp_path):
    """store_file_problems 5, 9-14 (a creatable folder refused, or the check crashing)."""
    path = tmp_path / "one" / "two" / "tokens.json"
    assert store_file_problems(path) == []
    assert list(tmp_path.iterdir()) == []


def test_a_folder_under_a_file_cannot_be_created(tmp_path):
    """store_file_problems 6-8 (the blocking file not found, or let through when executable)."""
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
    """store_file_problems 1 (with_file off by default), 24 (the check crashing)."""
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


def test_a_folder_this_user_may_not_write_is_a_problem():
    """store_file_problems 15, 22 (`W_OK & X_OK` is 0: only asks whether the folder exists)."""
    # Not under pytest's tmp_path: another user must be able to reach it (it is 0700).
    top = Path(tempfile.mkdtemp(prefix="sfdcflex-store-check-"))
    try:
        folder = top / "store"
        folder.mkdir()
        for made in (top, folder):
            made.chmod(0o755 if os.geteuid() == 0 else 0o555)
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
    """_damaged 3, 7, 9, 10, 12-14 (the log line or the answer garbled)."""
    path = tmp_path / "tokens.json"
    path.write_text("[]")
    with caplog.at_level(logging.ERROR, logger="sfdcflex"), pytest.raises(StoreDamaged) as raised:
        JsonFileTokenStore(path).get(ANN)
    assert raised.value.body() == {"error": "token_store_damaged", "message": DAMAGED}
    assert caplog.messages == [
        f'the token store {path} does not hold {{"version": 1, "agents": {{...}}}}; it was left '
        "untouched: repair it or move it away (agents must then link again)"]


# --- what the file records ------------------------------------------------------------------

def test_each_entry_records_when_it_was_written_in_utc(tmp_path):
    """_commit 5 (updated_at in local time, without its offset)."""
    path = tmp_path / "tokens.json"
    JsonFileTokenStore(path).put(ANN, "access-1", "refresh-1")
    written = datetime.fromisoformat(json.loads(path.read_text())["agents"][ANN]["updated_at"])
    assert written.utcoffset() == timedelta(0)
