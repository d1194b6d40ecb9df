"""Installs that some slow tests wait for, begun in the background as soon as they are collected.

README's install into a fresh virtual environment and the WSGI hosts' install take some 20 s of
pip between them. A fixture named in BACKGROUND gets its value from `background(request, name)`;
this plugin (loaded by conftest.py) begins that work in a thread once collection is done, for
the tests this process runs, and moves those tests' modules to the end of the run, so the
install overlaps everything else.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable

import pytest

NICE = 10


class Background:
    """Work some slow tests need (a package install), begun in a thread as soon as they are
    collected, so that it overlaps the rest of the run; `result()` waits for it and raises what
    it raised. The thread lowers its own priority to NICE at least (on Linux a priority is a
    thread's, and the processes it starts inherit it), so the tests running meanwhile keep the
    CPU first."""

    def __init__(self, make: Callable[[Path], object], folder: Path) -> None:
        self.folder = folder
        self._make = make
        self._done = threading.Event()
        self._value: object = None
        self._error: BaseException | None = None
        self._discard = False
        threading.Thread(target=self._run, name="background-install", daemon=True).start()

    def _run(self) -> None:
        try:
            try:
                me = threading.get_native_id()
                os.setpriority(os.PRIO_PROCESS, me, max(NICE, os.getpriority(os.PRIO_PROCESS, me)))
            except (AttributeError, OSError):
                pass   # not Linux: it merely competes for the CPU on equal terms
            self._value = self._make(self.folder)
        except BaseException as error:   # pytest.skip and pytest.fail included: result() re-raises
            self._error = error
        finally:
            self._done.set()
            if self._discard:
                shutil.rmtree(self.folder, ignore_errors=True)

    def discard(self) -> None:
        """Remove the folder now, or when the install ends (an interrupted run leaves it if the
        interpreter exits first: the install's process then finishes on its own)."""
        self._discard = True
        if self._done.is_set():
            shutil.rmtree(self.folder, ignore_errors=True)

    def result(self, timeout: float = 900.0) -> object:
        if not self._done.wait(timeout):
            raise TimeoutError(f"the background install in {self.folder} took over {timeout:.0f} s")
        if self._error is not None:
            raise self._error
        return self._value


# Fixture name -> the module-level function (in the test module that defines the fixture) that
# makes it in a folder of its own: those fixtures ask background(request, name) for the result.
BACKGROUND = {"opt": "install_as_readme_says", "site": "install_wsgi_hosts"}
_started: dict[str, Background] = {}


def _needs(item) -> list[tuple[str, Callable[[Path], object]]]:
    """The background installs `item` waits for: (fixture name, the function making it)."""
    found = []
    for name in BACKGROUND.keys() & set(getattr(item, "fixturenames", ())):
        make = getattr(getattr(item, "module", None), BACKGROUND[name], None)
        if make is not None:   # not another module's fixture of the same name
            found.append((name, make))
    return found


@pytest.hookimpl(trylast=True)   # after -m and -k have deselected
def pytest_collection_modifyitems(config, items) -> None:
    """The modules of tests waiting for a background install run last (whole modules, so that
    module-scoped fixtures are still made once)."""
    late = {item.path for item in items if _needs(item)}
    items[:] = [item for item in items if item.path not in late] + [item for item in items if item.path in late]


def pytest_collection_finish(session) -> None:
    """Begin the background installs that the tests this process will run need (lanes.py may
    have handed some modules to a second process, which begins its own)."""
    if session.config.option.collectonly:
        return
    for item in session.items:
        for name, make in _needs(item):
            if name not in _started:
                _started[name] = Background(make, Path(tempfile.mkdtemp(prefix=f"sfdcflex-{name}-")))


def background(request, name: str) -> object:
    """What the background install `name` made (begun now, if collection did not begin it)."""
    if name not in _started:
        make = getattr(request.module, BACKGROUND[name])
        _started[name] = Background(make, request.getfixturevalue("tmp_path_factory").mktemp(name))
    return _started[name].result()


def pytest_unconfigure(config) -> None:
    for job in _started.values():
        job.discard()
    _started.clear()
