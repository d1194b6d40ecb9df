"""Deadlines: run an action for every armed key whose deadline has passed.

One thread sleeps until the earliest armed deadline and runs what is due. The runtime uses it
to answer 504 when a function runs past its time limit while the function itself goes on.
(The server's read and idle deadlines are checked by its own I/O loop, which owns those
connections.)
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Hashable

log = logging.getLogger("sfdcflex")
# The longest the thread sleeps. A deadline armed later than its planned wake-up (every
# invocation's: now + the time limit) costs no wake-up of its own; only one armed earlier
# than that wakes it at once. So an idle server's watchdog wakes once a second, not 20 times.
IDLE_WAKE = 1.0


class Deadlines:
    """Armed (deadline, action) pairs, run by one daemon thread when their deadline passes."""

    def __init__(self, name: str = "deadlines") -> None:
        self._armed: dict[Hashable, tuple[float, Callable[[], None]]] = {}
        self._lock = threading.Lock()
        self._poke = threading.Event()
        self._stopped = False
        self._wake_at = 0.0  # when the thread wakes next, unless poked
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def arm(self, key: Hashable, deadline: float, action: Callable[[], None]) -> None:
        """Run `action` once `time.monotonic()` passes `deadline`, unless disarmed first."""
        with self._lock:
            self._armed[key] = (deadline, action)
            if deadline < self._wake_at:
                self._wake_at = deadline
                self._poke.set()

    def disarm(self, key: Hashable) -> None:
        with self._lock:
            self._armed.pop(key, None)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._poke.set()

    def _loop(self) -> None:
        while True:
            with self._lock:
                if self._stopped:
                    return
                now = time.monotonic()
                due = [key for key, (deadline, _) in self._armed.items() if deadline <= now]
                actions = [self._armed.pop(key)[1] for key in due]
                earliest = min((deadline for deadline, _ in self._armed.values()), default=now + IDLE_WAKE)
                wake_at = self._wake_at = min(earliest, now + IDLE_WAKE)
                self._poke.clear()  # under the lock: an arm from now on sees the new wake_at
            for action in actions:
                try:
                    action()
                except Exception:  # one failed action must not stop the others
                    log.exception("deadline action failed")
            self._poke.wait(max(0.0, wake_at - time.monotonic()))
