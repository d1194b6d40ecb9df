"""The worker pool, on plain jobs: it grows with the load (no thread before the first job, one more
only when a job finds none free, never more than `count`), and every thread ends with it."""
from __future__ import annotations

import logging
import threading

from sfdcflex.runtime.http.limits import ServerLimits
from sfdcflex.runtime.http.worker import Workers
from tests.support.sockets import wait_until


def blocking_jobs(count: int) -> tuple[list, threading.Event, list[threading.Event]]:
    """`count` jobs that each say they run, then wait for `release`."""
    release = threading.Event()
    running = [threading.Event() for _ in range(count)]

    def job(index: int) -> None:
        running[index].set()
        release.wait(5)

    return [lambda i=i: job(i) for i in range(count)], release, running


def test_an_idle_pool_starts_no_thread_and_jobs_one_at_a_time_reuse_them():
    workers = Workers(ServerLimits().threads)
    assert workers.started == 0 and workers.count == 38
    try:
        for _ in range(20):   # one after the other
            done = threading.Event()
            workers.submit(done.set)
            assert done.wait(5)
        # One thread could run them all; another starts only when a job arrives before the
        # thread that ran the last one has said it is free (a few microseconds, longer when
        # the machine is busy), so a few may start, never one per job.
        assert 1 <= workers.started <= 5, workers.started
    finally:
        workers.stop()


def test_jobs_at_once_each_get_a_thread_of_their_own_below_the_cap():
    workers = Workers(8)
    jobs, release, running = blocking_jobs(6)
    try:
        for job in jobs:
            workers.submit(job)
        assert all(event.wait(5) for event in running)  # all six run side by side
        assert workers.started == 6
    finally:
        release.set()
        workers.stop()


def test_past_the_cap_jobs_wait_for_a_thread_and_no_more_start():
    workers = Workers(3)
    jobs, release, running = blocking_jobs(5)
    try:
        for job in jobs:
            workers.submit(job)
        assert wait_until(lambda: sum(event.is_set() for event in running) == 3)
        assert workers.started == 3 and workers.backlogged()
        assert sum(event.is_set() for event in running) == 3  # two wait in the queue
        release.set()
        assert all(event.wait(5) for event in running)
        done = threading.Event()
        workers.submit(done.set)
        assert done.wait(5) and workers.started == 3
        assert wait_until(lambda: not workers.backlogged())
    finally:
        release.set()
        workers.stop()


def test_every_worker_ends_with_the_pool():
    workers = Workers(4)
    jobs, release, running = blocking_jobs(4)
    for job in jobs:
        workers.submit(job)
    assert all(event.wait(5) for event in running)
    threads = list(workers._threads)
    assert len(threads) == 4 and all(thread.is_alive() for thread in threads)
    release.set()
    workers.stop()
    assert wait_until(lambda: not any(thread.is_alive() for thread in threads), 3)
    workers.submit(lambda: None)   # a late job after the stop starts nothing
    assert workers.started == 4


def test_a_failing_job_is_logged_and_costs_no_thread(caplog):
    workers = Workers(1)
    done = threading.Event()
    try:
        workers.submit(lambda: 1 / 0)
        workers.submit(done.set)
        assert done.wait(5) and workers.started == 1
    finally:
        workers.stop()
    assert "a job on a worker thread failed" in caplog.text and "ZeroDivisionError" in caplog.text
    assert [r.levelno for r in caplog.records if r.name == "sfdcflex"] == [logging.ERROR]
