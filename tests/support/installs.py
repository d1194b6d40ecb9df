"""The two real installs the slow system tests need (tests/system/), started as soon as
collection shows a test that needs them, in threads beside the rest of the suite: each is mostly
one core's work in a pip child, and waiting for them when the first system test asked cost the
suite some 10 s of its wall time. tests/conftest.py starts and finishes them."""
from __future__ import annotations

import shutil
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from sfdcflex.bench.hosts import install_hosts
from tests.support.deployment import install_as_readme_says

INSTALLS = pytest.StashKey[tuple[Future, Future, Path]]()
NEEDS_INSTALLS = {"opt", "hosts_site", "installs"}


def start_installs(config: pytest.Config) -> tuple[Future, Future, Path]:
    """README's install into a fresh venv and the serving-choices benchmark's install of waitress
    and gunicorn, started now, side by side, in a folder removed when the session ends."""
    if INSTALLS not in config.stash:
        root = Path(tempfile.mkdtemp(prefix="sfdcflex-installs-"))
        (root / "opt").mkdir()
        (root / "hosts").mkdir()
        pool = ThreadPoolExecutor(2, thread_name_prefix="install")
        readme = pool.submit(install_as_readme_says, root / "opt")
        hosts = pool.submit(install_hosts, root / "hosts")
        pool.shutdown(wait=False)
        config.stash[INSTALLS] = (readme, hosts, root)
    return config.stash[INSTALLS]


def finish_installs(config: pytest.Config) -> None:
    """At the session's end: wait for installs still running, then remove their folder."""
    started = config.stash.get(INSTALLS, None)
    if started is not None:
        readme, hosts, root = started
        for future in (readme, hosts):
            future.exception()  # waits; an install's failure was reported to the tests needing it
        shutil.rmtree(root, ignore_errors=True)
