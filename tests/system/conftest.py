"""The slow whole-process tests' costly set-up, made once per session: two real installs
(tests/support/installs.py, started at collection by tests/conftest.py)."""
from __future__ import annotations

import subprocess
from concurrent.futures import Future
from pathlib import Path

import pytest

from tests.support.installs import start_installs


@pytest.fixture(scope="session")
def installs(request) -> tuple[Future, Future]:
    """The two installs (started at collection when any test here needs them)."""
    readme, hosts, _ = start_installs(request.config)
    return readme, hosts


@pytest.fixture(scope="session")
def opt(installs) -> Path:
    """A temporary /opt/sfdcflex with README's install done: a venv with the built package,
    gunicorn and waitress (skips when the package registry cannot be reached)."""
    return installs[0].result()


@pytest.fixture(scope="session")
def hosts_site(installs) -> Path:
    """A folder where the benchmark installed waitress and gunicorn (pip --target), for PYTHONPATH."""
    try:
        return installs[1].result()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        pytest.skip(f"waitress/gunicorn could not be installed from the package index: {error}")
