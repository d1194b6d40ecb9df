"""What start-up and `run.py --check` say about TOKEN_STORE_PATH (store_file_problems): a folder that
can be made, one under a file, a token file absent or damaged, a folder this user may not write."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from sfdcflex.store import store_file_problems
from tests.support.bounded import returns_within
from tests.support.users import as_nobody

DAMAGED = "The token store is damaged; an operator must repair it"


def test_a_folder_that_can_be_created_is_no_problem_and_is_not_created(tmp_path):
    """A folder that can be made is not refused, and checking it does not make it."""
    path = tmp_path / "one" / "two" / "tokens.json"
    assert store_file_problems(path) == []
    assert list(tmp_path.iterdir()) == []


def test_a_folder_under_a_file_cannot_be_created(tmp_path):
    """A file where a folder must be is found and named, even when it is executable."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    blocker.chmod(0o755)     # executable, so only "not a folder" can refuse it (root may write anything)
    folder = blocker / "store"
    assert store_file_problems(folder / "tokens.json") == [
        f"config: TOKEN_STORE_PATH: the folder {folder} does not exist and cannot be created "
        f"({blocker} is not a writable folder)"]


def test_an_absent_token_file_is_checked_without_creating_anything(tmp_path):
    """The check opens no store, so it makes no lock file."""
    (tmp_path / "store").mkdir()
    assert store_file_problems(tmp_path / "store" / "tokens.json") == []
    assert list((tmp_path / "store").iterdir()) == []


def test_a_damaged_token_file_is_a_problem_unless_the_file_is_not_used(tmp_path, caplog):
    """A damaged file is reported (by default the file is checked), not crashed on; the Sync store
    does not use the file."""
    path = tmp_path / "tokens.json"
    path.write_text("{damaged")
    assert store_file_problems(path) == [f"config: TOKEN_STORE_PATH: {DAMAGED}"]
    assert f"the token store {path} is not valid JSON" in caplog.text
    assert store_file_problems(path, with_file=False) == []   # the Sync store keeps only its secret here


def _problems_as_another_user(path: Path) -> list[str]:
    """store_file_problems(path) as a user who may not write the folders root made 0755: as root,
    a forked child as user id 65534; otherwise the caller, whose folder is made read-only (0555)."""
    if os.geteuid() != 0:
        return store_file_problems(path)
    return as_nobody(lambda: store_file_problems(path))


def test_a_folder_the_user_may_not_write_is_a_problem_for_that_user():
    """The check asks whether this user may write and enter the folder, not only whether it exists."""
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


def test_a_fifo_planted_as_the_token_file_is_refused_in_one_line_not_waited_on(tmp_path):
    """Opening a FIFO waits for a writer for ever: --check and start-up must refuse it at once."""
    (tmp_path / "store").mkdir()
    path = tmp_path / "store" / "tokens.json"
    os.mkfifo(path, 0o600)
    assert returns_within(5, lambda: store_file_problems(path)) == [f"config: {path} is not a regular file"]
