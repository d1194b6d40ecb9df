"""The HTTP server's tests read heads afresh: `http11.parse_head` remembers heads it has read,
and a head remembered by an earlier test (or by mutmut's clean run, before it forks a child per
mutant) would otherwise skip the parse a test means to check."""
from __future__ import annotations

import pytest

from sfdcflex.runtime.http import http11


@pytest.fixture(autouse=True)
def _heads_read_afresh():
    http11._remembered_head.cache_clear()
    yield
