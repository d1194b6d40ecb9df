"""Deadlines: run an action for every armed key whose deadline has passed.

One thread checks all armed keys a few times a second. The runtime uses it to answer 504 when
a function runs past its time limit while the function itself goes on. (The server's read and
idle deadlines are checked by its own I/O loop, which owns those connections.)
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Hashable

log = logging.getLogger("sfdcflex")


class Deadlines:
    """Armed (deadline, action) pairs, checked every `interval` seconds by one daemon thread."""

    def __init__(self, interval: float = 0.05, name: str = "deadlines") -> None:
        self._armed: dict[Hashable, tuple[float, Callable[[], None]]] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def arm(self, key: Hashable, deadline: float, action: Callable[[], None]) -> None:
        """Run `action` once `time.monotonic()` passes `deadline`, unless disarmed first."""
        with self._lock:
            self._armed[key] = (deadline, action)

    def disarm(self, key: Hashable) -> None:
        with self._lock:
            self._armed.pop(key, None)

    def stop(self) -> None:
        self._stopped.set()

    def _loop(self) -> None:
        while not self._stopped.wait(self._interval):
            now = time.monotonic()
            with self._lock:
                due = [key for key, (deadline, _) in self._armed.items() if deadline <= now]
                actions = [self._armed.pop(key)[1] for key in due]
            for action in actions:
                try:
                    action()
                except Exception:  # one failed action must not stop the others
                    log.exception("deadline action failed")
