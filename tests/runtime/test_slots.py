"""The concurrency cap's slots: never more than the limit taken, a waiter gets a slot given back."""
from __future__ import annotations

import threading
import time

import pytest

from sfdcflex.runtime.slots import Slots


def test_no_more_than_the_limit_are_taken():
    slots = Slots(2)
    assert slots.try_take() and slots.try_take()
    assert not slots.try_take() and slots.taken == 2
    slots.give_back()
    assert slots.try_take() and not slots.try_take()


def test_a_waiter_gets_the_slot_given_back_while_it_waits():
    slots = Slots(1)
    assert slots.try_take()
    got = []
    waiter = threading.Thread(target=lambda: got.append(slots.take(5.0)))
    waiter.start()
    time.sleep(0.05)
    assert got == []
    slots.give_back()
    waiter.join(1)  # woken by the give-back, not by its own timeout
    assert got == [True] and slots.taken == 1


def test_a_waiter_gives_up_at_its_timeout():
    slots = Slots(1)
    assert slots.try_take()
    started = time.monotonic()
    assert slots.take(0.05) is False
    assert 0.04 <= time.monotonic() - started < 1.0 and slots.taken == 1


def test_giving_back_more_than_was_taken_is_a_bug_said_at_once():
    slots = Slots(1)
    with pytest.raises(ValueError):
        slots.give_back()
