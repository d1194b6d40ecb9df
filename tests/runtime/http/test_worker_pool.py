"""The worker pool grows with the load: no thread before the first request, one more only when a
request finds none free, never more than `threads`, and every one ends with the server."""
from __future__ import annotations

import threading
import time

from tests.runtime.http.test_server_bounds import wait_until
from sfdcflex.runtime.http.limits import ServerLimits


def workers_of(served):
    assert wait_until(lambda: served.server.workers is not None, 3)   # made as the loop starts
    return served.server.workers


def slow_calls(served, count: int, seconds: float) -> list[int]:
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda: statuses.append(
        served.call("POST", "/slow", body={"wait": seconds}).status)) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return statuses


def test_an_idle_server_starts_no_worker_and_one_client_at_a_time_reuses_them(serve):
    served = serve()
    workers = workers_of(served)
    assert workers.started == 0 and workers.count == 38
    for _ in range(20):   # one after the other, each on a new connection
        assert served.call("GET", "/hello", headers={"Connection": "close"}).status == 200
    # One thread could serve them all; another starts only when a request arrives before the
    # thread that answered the last one has said it is free (a few microseconds, longer when
    # the machine is busy), so a few may start, never one per request.
    assert 1 <= workers.started <= 5, workers.started


def test_requests_at_once_each_get_a_thread_of_their_own_below_the_cap(serve):
    served = serve(server_limits=ServerLimits(threads=8))
    workers = workers_of(served)
    started = time.monotonic()
    assert slow_calls(served, 6, 0.5) == [200] * 6
    # all six ran side by side: one thread short, and two of them would have taken 1 s
    assert time.monotonic() - started < 0.95
    assert workers.started <= 6


def test_past_the_cap_requests_wait_for_a_thread_and_no_more_start(serve):
    served = serve(server_limits=ServerLimits(threads=3))
    workers = workers_of(served)
    started = time.monotonic()
    assert slow_calls(served, 5, 0.3) == [200] * 5
    assert time.monotonic() - started >= 0.55   # two rounds: five requests through three threads
    assert workers.started <= 3
    assert served.call("GET", "/hello").status == 200 and workers.started == 3


def test_every_worker_ends_with_the_server(serve):
    served = serve(server_limits=ServerLimits(threads=4))
    assert slow_calls(served, 4, 0.1) == [200] * 4
    workers = workers_of(served)
    threads = list(workers._threads)
    assert len(threads) == 4 and all(thread.is_alive() for thread in threads)
    served.server.shutdown()
    served.server.server_close()
    assert wait_until(lambda: not any(thread.is_alive() for thread in threads), 3)
    workers.submit(None)   # a late hand-over after the stop starts nothing
    assert workers.started == 4
