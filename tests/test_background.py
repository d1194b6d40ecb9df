"""tests/background.py: work begun in a thread at a lower priority, its value or its error handed
to whoever waits, its folder removed, and the tests waiting for it moved to the end of the run."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tests import background
from tests.background import Background


def test_the_value_is_handed_over_and_the_work_ran_at_a_lower_priority_in_another_thread(tmp_path):
    seen = {}

    def make(folder: Path) -> str:
        me = threading.get_native_id()
        seen.update(thread=me, nice=os.getpriority(os.PRIO_PROCESS, me), folder=folder)
        return "installed"

    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    job = Background(make, tmp_path)
    assert job.result(timeout=10) == "installed"
    assert seen["folder"] == tmp_path and seen["thread"] != threading.get_native_id()
    assert seen["nice"] == max(background.NICE, mine)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine   # only its own thread


def test_what_the_work_raised_is_raised_to_each_waiter_skips_included(tmp_path):
    def fails(folder: Path) -> None:
        raise RuntimeError("pip said no")

    job = Background(fails, tmp_path)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="pip said no"):
            job.result(timeout=10)
    skipped = Background(lambda folder: pytest.skip("no registry"), tmp_path)
    with pytest.raises(pytest.skip.Exception, match="no registry"):
        skipped.result(timeout=10)


def test_waiting_is_bounded(tmp_path):
    gate = threading.Event()
    job = Background(lambda folder: gate.wait(10), tmp_path)
    with pytest.raises(TimeoutError, match="took over 0 s"):
        job.result(timeout=0.05)
    gate.set()
    assert job.result(timeout=10) is True


def test_discard_removes_the_folder_now_or_when_the_work_ends(tmp_path):
    done_folder, busy_folder = tmp_path / "done", tmp_path / "busy"
    for folder in (done_folder, busy_folder):
        folder.mkdir()
        (folder / "venv").mkdir()
    done = Background(lambda folder: None, done_folder)
    done.result(timeout=10)
    done.discard()
    assert not done_folder.exists()
    gate = threading.Event()
    busy = Background(lambda folder: gate.wait(10), busy_folder)
    busy.discard()
    assert busy_folder.exists()   # still in use
    gate.set()
    busy.result(timeout=10)
    deadline = time.monotonic() + 5
    while busy_folder.exists() and time.monotonic() < deadline:
        time.sleep(0.01)   # the thread removes it right after handing over the result
    assert not busy_folder.exists()


class Item:
    def __init__(self, path: str, fixtures: tuple[str, ...], module) -> None:
        self.path, self.fixturenames, self.module = Path(path), fixtures, module


def test_the_modules_waiting_for_an_install_run_last_in_their_order():
    class Deploy:
        @staticmethod
        def install_as_readme_says(folder):
            return folder

    class Other:   # a module with a fixture of the same name but no install of its own
        pass

    items = [Item("a.py", (), Other), Item("deploy.py", ("tmp_path",), Deploy),
             Item("deploy.py", ("opt",), Deploy), Item("cdp.py", ("opt",), Other), Item("z.py", (), Other)]
    background.pytest_collection_modifyitems(None, items)
    assert [(item.path.name, item.fixturenames) for item in items] == [
        ("a.py", ()), ("cdp.py", ("opt",)), ("z.py", ()), ("deploy.py", ("tmp_path",)), ("deploy.py", ("opt",))]
