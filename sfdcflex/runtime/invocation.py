"""One run of a function: its callback (the first wins), its concurrency slot, and the slot given
back while the function waits for something that is not its own work."""
from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from .errors import TooManyRequests
from .slots import Slots

log = logging.getLogger("sfdcflex")


class Invocation:
    """One run of a handler: the first callback wins, later ones are ignored with a warning.

    Most handlers call back before anyone waits, so the waiting lock is made only when needed.
    """

    # What an invocation starts with, read from the class until it is set (one per request).
    finished = False
    timed_out = False
    error: object = None
    payload: object = None
    _waiter: threading.Lock | None = None

    def __init__(self, route: str, slots: Slots) -> None:
        self.route = route
        self.slots, self.holds_slot = slots, True
        self.deadline = time.monotonic()
        self._lock = threading.Lock()

    def callback(self, err: object = None, payload: object = None) -> None:
        with self._lock:
            if self.finished:
                log.warning("%s: callback called again; ignored (the first callback wins)", self.route)
                return
            self.error, self.payload, self.finished = err, payload, True
            waiter = self._waiter
        if waiter is not None:
            waiter.release()

    def release_slot(self) -> None:
        if self.holds_slot:
            self.holds_slot = False
            self.slots.give_back()

    def wait(self, timeout: float) -> bool:
        """True once the handler has called back, waiting at most `timeout` seconds for it."""
        with self._lock:
            if self.finished:
                return True
            if self._waiter is None:
                self._waiter = threading.Lock()
                self._waiter.acquire()
            waiter = self._waiter
        if waiter.acquire(timeout=timeout):
            waiter.release()  # let any other waiter through too
        return self.finished


@contextmanager
def slot_released(invocation: Invocation) -> Iterator[None]:
    """`with context.slot_released():` give the running function's concurrency slot back while
    it waits for something that is not its own work (a token check with Twilio IAM), and take
    it again afterwards.

    Without this a flood of requests with garbage tokens holds every slot while IAM answers,
    and real agents get 429. The check cannot move before the slot is taken instead: the
    token is in the body, and the body is parsed only inside the slot. When the wait raises
    (an invalid token), the slot is not taken again: the function only renders its error.
    Taking it again waits at most until the time limit, then answers 429.
    """
    if not invocation.holds_slot:
        yield
        return
    invocation.release_slot()
    yield
    if not invocation.slots.take(max(0.0, invocation.deadline - time.monotonic())):
        raise TooManyRequests("too many invocations at once; retry shortly", headers={"Retry-After": "1"})
    invocation.holds_slot = True


async def awaited(awaitable):
    """An async def handler's coroutine, run to its end by asyncio.run."""
    return await awaitable
