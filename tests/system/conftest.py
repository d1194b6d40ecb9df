"""The slow whole-process tests' one costly set-up: README's install, made once per session."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.deployment import install_as_readme_says


@pytest.fixture(scope="session")
def opt(tmp_path_factory) -> Path:
    """A temporary /opt/sfdcflex with README's install done: a fresh venv with the built package,
    gunicorn and waitress (the WSGI hosts' tests use the same two, so they are installed once)."""
    return install_as_readme_says(tmp_path_factory.mktemp("opt"))
