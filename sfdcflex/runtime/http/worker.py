"""The worker threads: run a complete request through the App and write its reply in one send."""
from __future__ import annotations

import logging
import queue
import select
import socket
import threading
import time
from functools import partial
from typing import TYPE_CHECKING

from ..app import Request
from ..errors import HTTPError, ServiceUnavailable
from .connection import Connection
from .http11 import encode_reply
from ..response import Reply

if TYPE_CHECKING:
    from .server import FunctionsServer

log = logging.getLogger("sfdcflex")
KEEP_WAIT = 0.01  # seconds a free worker waits for the next request on its keep-alive connection


class Workers:
    """Up to `count` threads taking complete requests from one queue.

    A thread starts when a request arrives and no thread is free for it, and then stays: a
    server that is never busy holds few threads, a busy one never more than `count`, and a
    request waits in the queue only when all `count` are busy. (A fixed pool started at once
    cost every server start, a test's or a cold start's, 38 thread starts.)
    """

    def __init__(self, server: FunctionsServer, count: int) -> None:
        self.server = server
        self.count = count
        self.idle = 0  # threads waiting for a job
        self._scratch = threading.local()
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        # One permit per thread waiting for a job that no queued request has counted on yet: a
        # request takes a permit, or else starts a thread of its own.
        self._free = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def started(self) -> int:
        return len(self._threads)

    def submit(self, connection: Connection) -> None:
        self._jobs.put(connection)
        if not self._free.acquire(blocking=False):
            self._start_one()

    def _start_one(self) -> None:
        with self._lock:
            if self._stopped or len(self._threads) >= self.count:
                return  # all busy: the request waits for the first thread that is done
            thread = threading.Thread(target=self._work, name=f"sfdcflex-worker-{len(self._threads)}",
                                      daemon=True)
            self._threads.append(thread)
        thread.start()

    def stop(self) -> None:
        """Let every thread end after its current request (they are daemons: exit never waits)."""
        with self._lock:
            self._stopped = True
            started = len(self._threads)
        for _ in range(started):
            self._jobs.put(None)

    def _take(self, promised: bool) -> Connection | None:
        """The next job; a thread not `promised` to a request (every one after its first) first
        says it is free."""
        if not promised:
            self._free.release()
        self.idle += 1  # approximate (no lock): only a hint for _next_request_came
        try:
            return self._jobs.get()
        finally:
            self.idle -= 1

    def _work(self) -> None:
        poller = select.poll()  # one per thread, aimed at each connection in turn
        # recv_into a buffer of the thread's own: recv(65536) would allocate 64 KiB per request.
        # 16 KiB covers a usual request in one read and keeps 38 threads' buffers under 1 MiB.
        self._scratch.buffer = bytearray(16 * 1024)
        promised = True  # started for the request that found no thread free
        while (connection := self._take(promised)) is not None:
            promised = False
            try:
                keep = self._serve(connection)
                if keep:
                    poller.register(connection.sock, select.POLLIN)
                    try:
                        while keep and self._next_request_came(connection, poller):
                            keep = self._serve(connection)
                    finally:
                        poller.unregister(connection.sock)
            except Exception:  # a fault here must not cost the pool a thread
                log.exception("serving a request failed")
                keep = False
            self.server.give_back(connection, keep)

    def _next_request_came(self, connection: Connection, poller: select.poll) -> bool:
        """Keep a keep-alive connection for a moment, unless requests wait with no worker free.

        A client on a keep-alive connection usually sends its next request within a fraction
        of a millisecond; reading it here saves two thread hand-offs per request. The wait is
        short and bounded, so an idle client still costs no thread; a small request still
        arriving is waited for within the same bound, and only whole, valid ones are served
        here: anything else goes back to the I/O thread.
        """
        if self._jobs.qsize() > self.idle or self.server.draining:
            return False  # others wait for a worker: this connection queues up like theirs
        deadline = time.monotonic() + KEEP_WAIT
        while True:
            # http.client and others send a POST's head and body in two writes: wait for both.
            taken = self.server.connections.take_complete(connection) if connection.buffer else None
            if taken is not None:
                return taken
            left = deadline - time.monotonic()
            try:
                if left <= 0 or not poller.poll(left * 1000):
                    return False
                count = connection.sock.recv_into(self._scratch.buffer)
            except OSError:
                return False  # BlockingIOError, or reset: the I/O thread finds out on its own
            if not count:
                return False
            connection.buffer += memoryview(self._scratch.buffer)[:count]

    def _serve(self, connection: Connection) -> bool:
        """Answer the connection's request; True when the connection stays open for another."""
        server, head = self.server, connection.head
        body, reserved = connection.take_body()
        budget = server.connections.budget
        try:
            if not isinstance(body, (bytes, bytearray)):  # spooled to a file: load it in budget
                if not budget.reserve(head.length, server.limits.read_timeout):
                    return self._refuse(connection, ServiceUnavailable(
                        "the server holds too many request bodies; retry shortly",
                        headers={"Retry-After": "1"}))
                reserved = head.length
                with body:
                    body = body.read()
            address = connection.address[0] if isinstance(connection.address, tuple) else ""
            request = Request(head.method, head.target, head.headers, bytes(body), address)
            del body
            answered = threading.Lock()  # the reply or the watchdog's 504: whichever comes first
            reply = server.app.dispatch(request, partial(self._answer_early, connection, answered))
        finally:
            budget.release(reserved)
        if not answered.acquire(blocking=False):
            return False  # the 504 went out at the time limit; this connection is done
        keep = head.keep_alive and not server.draining
        data = encode_reply(reply, server.http_date.now(), keep, head_only=head.method == "HEAD")
        return send_reply(connection.sock, data, server.limits.send_timeout) and keep

    def _refuse(self, connection: Connection, exc: HTTPError) -> bool:
        refusal = self.server.app.refusal(exc, connection.head.headers if connection.head else None)
        data = encode_reply(refusal, self.server.http_date.now(), keep_alive=False)
        send_reply(connection.sock, data, self.server.limits.send_timeout)
        return False

    def _answer_early(self, connection: Connection, answered: threading.Lock, reply: Reply) -> None:
        """Send `reply` now, from the runtime's watchdog, unless the function's answer went first."""
        if answered.acquire(blocking=False):
            data = encode_reply(reply, self.server.http_date.now(), keep_alive=False)
            if send_reply(connection.sock, data, self.server.limits.send_timeout):
                try:
                    connection.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass  # the client left meanwhile


def send_reply(sock: socket.socket, data: bytes, timeout: float) -> bool:
    """Write a whole reply, starting with one send of all of it; False when the client is gone
    or has not taken it within `timeout` seconds (the socket is non-blocking)."""
    view, sent, deadline = memoryview(data), 0, None
    try:
        while True:
            try:
                sent += sock.send(view[sent:])
            except BlockingIOError:
                pass  # the send buffer is full: wait below
            if sent >= len(data):
                return True
            deadline = deadline or time.monotonic() + timeout
            if not _writable(sock, deadline - time.monotonic()):
                return False
    except OSError:
        return False


def _writable(sock: socket.socket, timeout: float) -> bool:
    """poll(), not select(): descriptors past 1024 are normal with many open connections."""
    if timeout <= 0:
        return False
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    return bool(poller.poll(timeout * 1000))
