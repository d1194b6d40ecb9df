"""The browser tests' one Chromium per module (a module's tests share it; modules do not, so no
tab, popup or cookie a module leaves behind reaches the next)."""
from __future__ import annotations

import pytest

from tests.browser.cdp import Chromium


@pytest.fixture(scope="module")
def browser():
    with Chromium.launch() as chromium:
        yield chromium
