"""The server's bounds by default: one thread more than the runtime's concurrency cap at least."""
from __future__ import annotations

from sfdcflex.runtime.app import Limits
from sfdcflex.runtime.http.limits import ServerLimits


def test_the_default_thread_count_leaves_threads_free_past_the_default_concurrency_cap():
    # Past the cap the runtime answers 429, which needs a thread free to run on.
    assert ServerLimits().threads == Limits().max_concurrency + 8
