"""The JSON token store's link stamp: a write by any process (another instance on the same file)
is seen at this one's next request, at no system call per request, even when an operator replaces
the lock file."""
from __future__ import annotations

import os

from sfdcflex.store import JsonFileTokenStore
from tests.support.store_writers import start_writer


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


def test_is_current_sees_another_process_write_through_the_mapped_stamp(tmp_path):
    path = tmp_path / "tokens.json"
    mine = JsonFileTokenStore(path)
    held = mine.put("ann@example.com", "access-1", "refresh-1")
    assert mine.is_current("ann@example.com", held.revision)
    writer = start_writer(path, "w", 1)               # a real other process, one write
    assert writer.communicate(timeout=30)[0].strip() == "0"
    assert not mine.is_current("ann@example.com", held.revision)


def test_is_current_asks_the_system_nothing(tmp_path, monkeypatch):
    now = [0.0]
    store = JsonFileTokenStore(tmp_path / "tokens.json", clock=lambda: now[0])
    held = store.put("ann@example.com", "access-1", "refresh-1")
    calls = []

    def system_call(name):
        real = getattr(os, name)

        def counted(*args, **kwargs):
            calls.append(name)
            return real(*args, **kwargs)
        return counted

    for name in ("open", "pread", "read", "fstat", "stat", "close"):
        monkeypatch.setattr(os, name, system_call(name))
    assert store.is_current("ann@example.com", held.revision) and calls == []
    now[0] += 1.0                                   # once a second: one lstat, the file unchanged
    assert store.is_current("ann@example.com", held.revision) and calls == ["stat"]


def test_a_replaced_lock_file_is_noticed_within_the_check_period(tmp_path):
    path, now = tmp_path / "tokens.json", [0.0]
    mine = JsonFileTokenStore(path, clock=lambda: now[0])
    held = mine.put("ann@example.com", "access-1", "refresh-1")
    lock = path.with_name(path.name + ".lock")
    replacement = tmp_path / "new.lock"               # an operator puts a new lock file in place
    replacement.write_bytes(os.urandom(16))
    replacement.chmod(0o600)
    os.replace(replacement, lock)
    JsonFileTokenStore(path).delete("ann@example.com")   # another instance, on the new file
    now[0] += 1.0
    assert not mine.is_current("ann@example.com", held.revision)
    assert mine.get("ann@example.com") is None
