"""Fixtures for the runtime's tests in process: apps called through App.dispatch, no socket."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.dispatch import Local, build_app
from tests.support.served import FIXTURE_FUNCTIONS


@pytest.fixture
def dispatcher():
    """dispatcher(folder=..., **App options) → Local; every app is closed after the test."""
    made: list[Local] = []

    def make(folder: Path = FIXTURE_FUNCTIONS, **options) -> Local:
        local = Local(build_app(folder, **options))
        made.append(local)
        return local

    yield make
    for local in made:
        local.join()
        local.app.close()


@pytest.fixture
def local(dispatcher) -> Local:
    return dispatcher()
