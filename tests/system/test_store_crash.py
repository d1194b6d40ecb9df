"""The JSON token store across a crash at the rename step, and that it replaces rather than rewrites.

A writer process is stopped exactly at its os.replace (just before it, or just after it and
before the folder's fsync) and SIGKILLed there: whatever the moment, the token file must parse
and hold the old or the new tokens. A store that rewrote the file in place never reaches
os.replace, and these tests fail on it.
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sfdcflex.store import JsonFileTokenStore

REPO = Path(__file__).resolve().parents[2]

# os.replace is wrapped so the writer says where it is and then waits for the kill.
HELD_WRITER = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from sfdcflex.store import JsonFileTokenStore
    real_replace, moment = os.replace, sys.argv[2]

    def replace(source, target):
        if moment == "after":
            real_replace(source, target)
        print("at-rename", flush=True)
        sys.stdin.readline()   # held here until SIGKILL
        real_replace(source, target)

    os.replace = replace
    JsonFileTokenStore(Path(sys.argv[1])).put("new@example.com", "access-new", "refresh-new")
    print("finished", flush=True)
""")


def _held_writer(path: Path, moment: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HELD_WRITER, str(path), moment], cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def _first_line(process: subprocess.Popen, timeout: float) -> str:
    """The writer's first line of output, or "" if none came within `timeout` seconds."""
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    return process.stdout.readline().strip() if ready else ""


@pytest.mark.slow  # SIGKILLed writers
@pytest.mark.parametrize("moment", ["before", "after"])
def test_a_writer_killed_at_the_rename_leaves_the_old_or_the_new_tokens(tmp_path, moment):
    path = tmp_path / "tokens.json"
    JsonFileTokenStore(path).put("old@example.com", "access-old", "refresh-old")
    writer = _held_writer(path, moment)
    try:
        reached = _first_line(writer, timeout=20)
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.kill()
        writer.communicate(timeout=10)
    assert reached == "at-rename", "the store wrote the token file without os.replace"
    assert writer.returncode == -signal.SIGKILL
    agents = json.loads(path.read_text())["agents"]
    expected = {"old@example.com"} if moment == "before" else {"old@example.com", "new@example.com"}
    assert set(agents) == expected
    store = JsonFileTokenStore(path)
    assert store.get("old@example.com").refresh_token == "refresh-old"
    if moment == "after":
        assert store.get("new@example.com").refresh_token == "refresh-new"
    assert path.stat().st_mode & 0o777 == 0o600
    # The store works on after the crash, whatever temp file the dead writer left behind.
    store.put("later@example.com", "access-later", "refresh-later")
    assert set(json.loads(path.read_text())["agents"]) == expected | {"later@example.com"}


def test_a_save_replaces_the_token_file_instead_of_rewriting_it(tmp_path):
    """A reader that opened the file before a save still reads the whole old document: the save
    made a new file and renamed it over the name, the old inode was never written to."""
    path = tmp_path / "tokens.json"
    store = JsonFileTokenStore(path)
    store.put("old@example.com", "access-old", "refresh-old")
    old_text = path.read_text()
    with path.open("r", encoding="utf-8") as before:
        inode = os.fstat(before.fileno()).st_ino
        store.put("new@example.com", "access-new", "refresh-new")
        assert before.read() == old_text
    assert path.stat().st_ino != inode
    assert set(json.loads(path.read_text())["agents"]) == {"old@example.com", "new@example.com"}


def test_the_held_writer_finishes_when_let_go(tmp_path):
    """The wrapper itself changes nothing: released instead of killed, the save completes."""
    path = tmp_path / "tokens.json"
    writer = _held_writer(path, "before")
    try:
        assert _first_line(writer, timeout=20) == "at-rename"
        output, _ = writer.communicate("\n", timeout=20)
    finally:
        writer.kill()
    assert output.strip() == "finished" and writer.returncode == 0
    assert JsonFileTokenStore(path).get("new@example.com").access_token == "access-new"
