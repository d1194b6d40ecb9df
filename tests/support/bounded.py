"""Calls that must not hang: a test of something that used to wait for ever fails, not hangs."""
from __future__ import annotations

import threading
from typing import Callable, TypeVar

T = TypeVar("T")


def returns_within(seconds: float, work: Callable[[], T]) -> T:
    """work()'s result (or its exception), failing the test when it has not returned in time;
    the call left behind runs on in a daemon thread."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append((True, work()))
        except BaseException as error:   # handed to the test below
            outcome.append((False, error))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert outcome, f"still waiting after {seconds:g} s"
    returned, value = outcome[0]
    if not returned:
        raise value
    return value
