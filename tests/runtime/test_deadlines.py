"""The watchdog's timer: actions run at their deadline, and an idle timer does not tick."""
from __future__ import annotations

import threading
import time

import pytest

from sfdcflex.runtime.deadlines import IDLE_WAKE, Deadlines


@pytest.fixture
def deadlines():
    timer = Deadlines(name="test-deadlines")
    yield timer
    timer.stop()


def test_an_action_runs_once_its_deadline_passes(deadlines):
    ran = threading.Event()
    armed_at = time.monotonic()
    deadlines.arm("a", armed_at + 0.05, ran.set)
    assert ran.wait(2.0)
    assert time.monotonic() - armed_at >= 0.05


def test_an_earlier_deadline_wakes_a_timer_asleep_until_a_later_one(deadlines):
    """The thread sleeps until the earliest deadline it knows; one armed sooner must wake it,
    or a short time limit would be answered at the later deadline (or a second late)."""
    deadlines.arm("late", time.monotonic() + 30.0, lambda: None)
    time.sleep(0.05)  # let it go to sleep until the late one (or its idle wake-up)
    ran = threading.Event()
    armed_at = time.monotonic()
    deadlines.arm("soon", armed_at + 0.05, ran.set)
    assert ran.wait(0.5), "the earlier deadline waited for the timer's own wake-up"
    assert time.monotonic() - armed_at < 0.5 < IDLE_WAKE


def test_a_disarmed_action_never_runs(deadlines):
    ran = threading.Event()
    deadlines.arm("a", time.monotonic() + 0.05, ran.set)
    deadlines.disarm("a")
    assert not ran.wait(0.15)   # three times the deadline


def test_one_failing_action_does_not_stop_the_others(deadlines):
    ran = threading.Event()

    def fail():
        raise RuntimeError("planted")

    now = time.monotonic()
    deadlines.arm("bad", now + 0.02, fail)
    deadlines.arm("good", now + 0.03, ran.set)
    assert ran.wait(2.0)


def test_an_idle_timer_sleeps_instead_of_ticking():
    """An idle server's watchdog must not wake 20 times a second: it used to, and at an agent
    panel's pace those wake-ups were a third of each request's CPU."""
    wakes = []
    timer = Deadlines(name="test-idle")
    try:
        original = timer._poke.wait

        def counted(timeout=None):
            wakes.append(timeout)
            return original(timeout)

        timer._poke.wait = counted
        time.sleep(0.3)
    finally:
        timer.stop()
    assert len(wakes) <= 2, f"{len(wakes)} wake-ups in 0.3 s while idle"


def test_disarming_after_the_action_ran_is_harmless(deadlines):
    """An invocation past its time limit disarms its key after the watchdog already ran (and
    dropped) it: that must not raise in the function's thread."""
    ran = threading.Event()
    deadlines.arm("a", time.monotonic(), ran.set)
    assert ran.wait(2.0)
    deadlines.disarm("a")
    deadlines.disarm("never armed")


def test_a_stopped_timer_ends_its_thread():
    timer = Deadlines(name="test-stop")
    timer.arm("late", time.monotonic() + 30.0, lambda: None)
    timer.stop()
    timer._thread.join(2.0)
    assert not timer._thread.is_alive()
