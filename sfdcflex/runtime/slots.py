"""The concurrency cap's slots: a counter under a plain lock, cheap when nobody waits.

Every invocation takes a slot and gives it back; `threading.BoundedSemaphore` pays for a
condition variable on both steps. Here only a function taking its slot back after a wait (a
Flex token check with IAM) can wait, on a condition made for that case.
"""
from __future__ import annotations

import threading
import time


class Slots:
    """At most `limit` taken at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.taken = 0
        self._lock = threading.Lock()
        self._freed = threading.Condition(self._lock)
        self._waiting = 0

    def try_take(self) -> bool:
        """Take a slot if one is free, without waiting."""
        with self._lock:
            if self.taken >= self.limit:
                return False
            self.taken += 1
            return True

    def take(self, timeout: float) -> bool:
        """Take a slot, waiting up to `timeout` seconds for one to be given back."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self.taken >= self.limit:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._waiting += 1
                try:
                    self._freed.wait(remaining)
                finally:
                    self._waiting -= 1
            self.taken += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            if self.taken <= 0:
                raise ValueError("a slot was given back that was not taken")
            self.taken -= 1
            if self._waiting:
                self._freed.notify()
