"""A clock a test moves by hand, for the modules that take their clock as a parameter."""
from __future__ import annotations

import time


class FakeClock:
    """Returns `now`, which the test sets (`clock.now += 60`), so expiry needs no sleeping."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now
