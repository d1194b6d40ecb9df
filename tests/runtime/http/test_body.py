"""Request bodies: in memory while small and within the budget, spooled to a file past them, and
the memory budget shared by every body."""
from __future__ import annotations

import socket
import threading
import time

from sfdcflex.runtime.http.body import SMALL_BODY, Body, BodyBudget


# --- BodyBudget ---------------------------------------------------------------------------------

def test_try_reserve_takes_what_fills_the_budget_exactly():
    budget = BodyBudget(10)
    assert budget.try_reserve(5)
    assert budget.try_reserve(5)
    assert budget.held == 10
    assert not budget.try_reserve(1)


def test_one_body_alone_always_fits_however_small_the_budget():
    budget = BodyBudget(10)
    assert budget.try_reserve(50) and budget.held == 50
    budget.release(50)
    assert budget.reserve(50, 0.0) and budget.held == 50


def test_reserve_adds_what_fits_up_to_the_limit_exactly():
    budget = BodyBudget(10)
    assert budget.reserve(3, 0.2)
    assert budget.reserve(7, 0.2)
    assert budget.held == 10


def test_reserve_gives_up_after_its_timeout_when_it_does_not_fit():
    budget = BodyBudget(10)
    assert budget.try_reserve(8)
    results = []
    waiter = threading.Thread(target=lambda: results.append(budget.reserve(5, 0.02)), daemon=True)
    started = time.monotonic()
    waiter.start()
    waiter.join(1.0)
    assert results == [False]
    assert time.monotonic() - started < 1.0
    assert budget.held == 8


def test_reserve_waits_for_a_release_that_makes_room():
    budget = BodyBudget(10)
    assert budget.try_reserve(8)
    results = []
    waiter = threading.Thread(target=lambda: results.append(budget.reserve(5, 5.0)), daemon=True)
    waiter.start()
    budget.release(8)
    waiter.join(5.0)
    assert results == [True] and budget.held == 5


# --- Body ---------------------------------------------------------------------------------------

def test_a_body_that_came_with_its_head_is_counted_when_it_fits_and_kept_when_not():
    budget = BodyBudget(3 * SMALL_BODY)
    body = Body.whole(budget, b"1" * 2 * SMALL_BODY)
    assert (body.complete, body.spooled, body.reserved, budget.held) == (True, False, 2 * SMALL_BODY,
                                                                         2 * SMALL_BODY)
    over = Body.whole(budget, b"a" * 2 * SMALL_BODY)  # in memory already: kept, just not counted
    assert over.reserved == 0 and over.read(0.0) == b"a" * 2 * SMALL_BODY
    body.release()
    over.release()
    assert budget.held == 0


def test_a_small_body_that_came_with_its_head_skips_the_budget():
    class Untouchable(BodyBudget):
        def try_reserve(self, size: int) -> bool:
            raise AssertionError("the budget's lock taken for a small body")

        def release(self, size: int) -> None:
            if size:
                raise AssertionError("the budget's lock taken for a small body")

    budget = Untouchable(10)
    for data in (b"", b"x" * SMALL_BODY):
        body = Body.whole(budget, data)
        assert body.read(0.0) == data and body.reserved == 0
        body.release()


def test_a_small_arriving_body_is_read_into_memory_within_the_budget():
    budget = BodyBudget(100)
    body = Body.arriving(budget, 10, bytearray(b"abc"), spool_threshold=10)
    assert (body.spooled, body.received, body.complete, budget.held) == (False, 3, False, 10)
    client, ours = socket.socketpair()
    with client, ours:
        client.sendall(b"defghijXYZ")  # what follows the body is not taken
        assert body.receive(ours, bytearray(4)) == 7
    assert body.complete and body.read(0.0) == b"abcdefghij"
    body.release()
    assert budget.held == 0 and body.reserved == 0


def test_a_body_past_the_threshold_or_the_budget_is_spooled_and_loaded_within_the_budget():
    budget = BodyBudget(16)
    big = Body.arriving(budget, 20, b"0123", spool_threshold=16)  # past the threshold
    assert big.spooled and budget.held == 0
    assert budget.try_reserve(10)
    crowded = Body.arriving(budget, 8, b"", spool_threshold=16)  # 10 + 8 > 16: to disk
    assert crowded.spooled and budget.held == 10
    client, ours = socket.socketpair()
    with client, ours:
        client.sendall(b"456789abcdefghij")
        while not big.complete:  # through the scratch buffer, 4 bytes at a time
            assert big.receive(ours, bytearray(4)) == 4
    assert big.read(0.01) is None  # no room for it in memory: the caller answers 503
    budget.release(10)
    assert big.read(0.01) == b"0123456789abcdefghij" and budget.held == 20
    big.release()
    crowded.release()
    assert budget.held == 0 and not big.spooled
