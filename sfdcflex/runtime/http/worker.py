"""Pools of worker threads running jobs (waitress's task dispatcher); on Linux, the threads also
wait for parked descriptors, leader/follower style.

They know nothing of connections or HTTP: a job is a callable, run on one of the threads; a
parked job runs when its descriptor turns readable.
"""
from __future__ import annotations

import collections
import logging
import os
import queue
import select
import threading
from typing import Callable

log = logging.getLogger("sfdcflex")
Job = Callable[[], None]


class _Threads:
    """What both pools share: up to `count` threads, each started when a job finds none free,
    and a flag that stops more from starting."""

    def __init__(self, count: int, name: str) -> None:
        self.count, self.name = count, name
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def started(self) -> int:
        return len(self._threads)

    def _start_one(self) -> None:
        with self._lock:
            if self._stopped or len(self._threads) >= self.count:
                return  # all busy: the job waits for the first thread that is done
            thread = threading.Thread(target=self._work, name=f"{self.name}-{len(self._threads)}",
                                      daemon=True)
            self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        raise NotImplementedError


class Workers(_Threads):
    """Up to `count` threads taking jobs from one queue.

    A thread starts when a job arrives and no thread is free for it, and then stays: a pool
    that is never busy holds few threads, a busy one never more than `count`, and a job waits
    in the queue only when all `count` are busy. (A fixed pool started at once cost every
    server start, a test's or a cold start's, a thread start per thread.)
    """

    can_park = False

    def __init__(self, count: int, name: str = "sfdcflex-worker") -> None:
        super().__init__(count, name)
        self.idle = 0  # threads waiting for a job
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        # One permit per thread waiting for a job that no queued job has counted on yet: a job
        # takes a permit, or else starts a thread of its own.
        self._free = threading.Semaphore(0)

    def backlogged(self) -> bool:
        """Whether jobs wait with no thread free for them (approximate: a hint, not a promise)."""
        return self._jobs.qsize() > self.idle

    def submit(self, job: Job) -> None:
        self._jobs.put(job)
        if not self._free.acquire(blocking=False):
            self._start_one()

    def stop(self) -> None:
        """Let every thread end after its current job (they are daemons: exit never waits)."""
        with self._lock:
            self._stopped = True
            started = len(self._threads)
        for _ in range(started):
            self._jobs.put(None)

    def _take(self, promised: bool) -> Job | None:
        """The next job; a thread not `promised` to a job (every one after its first) first
        says it is free."""
        if not promised:
            self._free.release()
        self.idle += 1  # approximate (no lock): only a hint for `backlogged`
        try:
            return self._jobs.get()
        finally:
            self.idle -= 1

    def _work(self) -> None:
        promised = True  # started for the job that found no thread free
        while (job := self._take(promised)) is not None:
            promised = False
            try:
                job()
            except Exception:  # a fault in a job must not cost the pool a thread
                log.exception("a job on a worker thread failed")


PARKING = hasattr(select, "epoll") and hasattr(os, "eventfd")


class ParkingWorkers(_Threads):
    """Up to `count` threads that wait in one epoll, for a queued job or for a parked descriptor
    turning readable (Linux).

    A kept-alive connection whose next request comes seconds later (an agent's panel) is parked
    here: the kernel wakes one waiting worker when the request arrives (epoll wakes one of the
    threads waiting in it per event, and EPOLLONESHOT keeps the others from seeing it), and
    that worker reads and answers it: one thread woken per request, as in a thread-per-
    connection server, where going through the I/O thread woke two and handed the GIL between
    them. Queued jobs are signalled on an eventfd in the same epoll. Threads start
    as `Workers`' do: when a job finds none waiting, up to `count`.
    """

    can_park = True

    def __init__(self, count: int, name: str = "sfdcflex-worker") -> None:
        super().__init__(count, name)
        self.idle = 0  # threads waiting in the epoll
        self._jobs: collections.deque[Job | None] = collections.deque()
        self._parked: dict[int, Job] = {}
        self._epoll = select.epoll()
        # Edge-triggered: each write wakes one waiting thread. Level-triggered, the kernel woke
        # waiter after waiter while the count stayed up (every idle thread, per job).
        self._signal = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll.register(self._signal, select.EPOLLIN | select.EPOLLET)
        self._ended = 0  # threads that have ended (after the stop)

    def backlogged(self) -> bool:
        """Whether jobs wait with no thread free for them (approximate: a hint, not a promise)."""
        return len(self._jobs) > self.idle

    def submit(self, job: Job) -> None:
        if self._stopped:
            return  # a late job after the stop: nobody runs it, as in Workers
        self._jobs.append(job)
        os.eventfd_write(self._signal, 1)
        if len(self._jobs) > self.idle:
            self._start_one()

    def park(self, fd: int, job: Job) -> None:
        """Run `job` on a worker once `fd` is readable (once: park it again for the next time).
        The caller no longer owns what `fd` belongs to, until the job runs or `unpark` says so.
        Only threads waiting in the pool run parked jobs, and parking starts none: the server
        parks from a worker, which waits next."""
        with self._lock:
            if self._stopped:
                raise OSError("the worker pool has stopped")
            self._parked[fd] = job
        events = select.EPOLLIN | select.EPOLLONESHOT
        try:
            self._epoll.modify(fd, events)  # parked before: re-arm
        except FileNotFoundError:
            self._epoll.register(fd, events)  # new here, or closed and its number reused

    def unpark(self, fd: int) -> bool:
        """Take `fd` back before its job ran: True when it was still parked (the caller owns it
        again), False when a worker has taken it meanwhile."""
        with self._lock:
            if self._parked.pop(fd, None) is None:
                return False
        try:
            self._epoll.unregister(fd)
        except (OSError, ValueError):
            pass  # closed meanwhile
        return True

    def stop(self) -> None:
        """Let every thread end after its current job (they are daemons: exit never waits)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            running = len(self._threads) - self._ended
            self._parked.clear()
        self._jobs.extend([None] * running)
        os.eventfd_write(self._signal, 1)  # each thread that takes a None passes the word on
        if not running:
            self._close()

    def _close(self) -> None:
        self._epoll.close()
        os.close(self._signal)

    def _next(self) -> Job | None:
        """Wait for the next thing to do: a queued job or a parked one whose descriptor is
        readable. None: the pool stopped."""
        while True:
            self.idle += 1  # approximate (no lock): a hint for `submit` and `backlogged`
            try:
                events = self._epoll.poll(-1, 1)  # (a signal's EINTR is retried: PEP 475)
            finally:
                self.idle -= 1
            for fd, _ in events:
                if fd != self._signal:
                    with self._lock:
                        job = self._parked.pop(fd, None)
                    if job is not None:
                        if len(self._jobs) > self.idle:
                            self._start_one()  # a queued job counted on this thread
                        return job
                    continue  # unparked meanwhile
                try:
                    os.eventfd_read(self._signal)  # back to 0: the next job's write is an edge
                except BlockingIOError:
                    pass  # another woken thread read it first
                try:
                    job = self._jobs.popleft()
                except IndexError:
                    continue  # taken by another thread
                if self._jobs:
                    os.eventfd_write(self._signal, 1)  # more queued: wake one more thread
                return job

    def _work(self) -> None:
        try:
            while (job := self._next()) is not None:
                try:
                    job()
                except Exception:  # a fault in a job must not cost the pool a thread
                    log.exception("a job on a worker thread failed")
        finally:
            with self._lock:
                self._ended += 1
                last = self._stopped and self._ended == len(self._threads)
            if last:
                self._close()


def make_workers(count: int, name: str = "sfdcflex-worker") -> Workers | ParkingWorkers:
    """The pool for this platform: ParkingWorkers where epoll and eventfd exist (Linux)."""
    return ParkingWorkers(count, name) if PARKING else Workers(count, name)
