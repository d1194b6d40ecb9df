"""Fixtures for the end-to-end tests of the functions."""
from __future__ import annotations

import pytest

from tests.support.crm import crm_on_own_standins


@pytest.fixture(scope="module")
def shared_crm(request, tmp_path_factory):
    """One server and set of stand-ins for a module's tests that take it: each counts only the
    calls it causes and reads only its own answers, so what the others leave behind is no matter."""
    with crm_on_own_standins(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])) as made:
        yield made
