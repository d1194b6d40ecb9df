"""The slow whole-process tests' costly set-up, made once per session: two real installs."""
from __future__ import annotations

import subprocess
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from sfdcflex.bench.hosts import install_hosts
from tests.support.deployment import install_as_readme_says


@pytest.fixture(scope="session")
def installs(tmp_path_factory) -> tuple[Future, Future]:
    """README's install into a fresh venv and the serving-choices benchmark's install of waitress
    and gunicorn, run side by side (each is mostly one core's work); both have ended on return."""
    with ThreadPoolExecutor(2, thread_name_prefix="install") as pool:
        readme = pool.submit(install_as_readme_says, tmp_path_factory.mktemp("opt"))
        hosts = pool.submit(install_hosts, tmp_path_factory.mktemp("hosts"))
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
