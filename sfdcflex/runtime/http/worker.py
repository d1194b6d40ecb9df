"""A pool of worker threads running jobs from one queue (waitress's task dispatcher).

It knows nothing of connections or HTTP: a job is a callable, run on one of the threads.
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import Callable

log = logging.getLogger("sfdcflex")
Job = Callable[[], None]


class Workers:
    """Up to `count` threads taking jobs from one queue.

    A thread starts when a job arrives and no thread is free for it, and then stays: a pool
    that is never busy holds few threads, a busy one never more than `count`, and a job waits
    in the queue only when all `count` are busy. (A fixed pool started at once cost every
    server start, a test's or a cold start's, a thread start per thread.)
    """

    def __init__(self, count: int, name: str = "sfdcflex-worker") -> None:
        self.count, self.name = count, name
        self.idle = 0  # threads waiting for a job
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        # One permit per thread waiting for a job that no queued job has counted on yet: a job
        # takes a permit, or else starts a thread of its own.
        self._free = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def started(self) -> int:
        return len(self._threads)

    def backlogged(self) -> bool:
        """Whether jobs wait with no thread free for them (approximate: a hint, not a promise)."""
        return self._jobs.qsize() > self.idle

    def submit(self, job: Job) -> None:
        self._jobs.put(job)
        if not self._free.acquire(blocking=False):
            self._start_one()

    def _start_one(self) -> None:
        with self._lock:
            if self._stopped or len(self._threads) >= self.count:
                return  # all busy: the job waits for the first thread that is done
            thread = threading.Thread(target=self._work, name=f"{self.name}-{len(self._threads)}",
                                      daemon=True)
            self._threads.append(thread)
        thread.start()

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
