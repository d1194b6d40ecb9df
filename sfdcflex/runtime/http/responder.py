"""Serving a connection on a worker thread: its request through the app, the reply in one send,
and the next request on a keep-alive connection read at once when it is already coming."""
from __future__ import annotations

import logging
import socket
import threading
import time
from functools import partial
from typing import Callable

from ..app import Request
from ..errors import HTTPError, ServiceUnavailable
from ..response import Reply
from .connection import BUSY, Connection, Refusal, came_quickly
from .http11 import encode_reply
from .limits import ServerLimits
from .sockets import KEEP_WAIT

log = logging.getLogger("sfdcflex")
Dispatch = Callable[[Request, Callable[[Reply], None]], Reply]


class Responder:
    """Answers a connection's complete request (a job for a worker), and the requests that
    follow it at once on keep-alive, then gives the connection back to the I/O loop."""

    def __init__(self, limits: ServerLimits, *, dispatch: Dispatch, refusal: Refusal,
                 date: Callable[[], str], take_complete: Callable[[Connection], bool | None],
                 give_back: Callable[[Connection, bool], None], draining: Callable[[], bool],
                 backlogged: Callable[[], bool]) -> None:
        self.limits = limits
        self.dispatch, self.refusal, self.date = dispatch, refusal, date
        self.take_complete, self.give_back = take_complete, give_back
        self.draining, self.backlogged = draining, backlogged
        self._thread = threading.local()

    def serve(self, connection: Connection) -> None:
        """Answer the connection's request, and the next ones while they come at once."""
        try:
            keep = self.answer(connection)
            while keep and self._next_request_came(connection):
                keep = self.answer(connection)
        except Exception:  # a fault here must cost neither the thread nor the connection's slot
            log.exception("serving a request failed")
            keep = False
        self.give_back(connection, keep)

    def resume(self, connection: Connection) -> None:
        """A parked connection's next request is arriving: read and answer it on this worker
        (the one the kernel woke for it), or hand what is not a whole small request to the
        I/O thread."""
        connection.state = BUSY
        scratch = self._scratch()
        try:
            count = connection.sock.recv_into(scratch, len(scratch), socket.MSG_DONTWAIT)
        except BlockingIOError:  # nothing after all (a wake-up meant for a closed descriptor)
            self.give_back(connection, True)
            return
        except OSError:
            count = 0  # reset by the client
        if not count:
            self.give_back(connection, False)
            return
        connection.buffer += memoryview(scratch)[:count]
        now, limits = time.monotonic(), self.limits
        # Whether it came right after the last answer, as in the I/O thread's `readable`.
        connection.quick = came_quickly(connection, now, limits.keepalive_timeout)
        connection.deadline = now + limits.read_timeout
        if self.take_complete(connection):
            self.serve(connection)
        else:
            self.give_back(connection, True)  # part of a request, a big or a bad one

    def _scratch(self) -> bytearray:
        """This thread's read buffer, made once per worker thread: recv(65536) would allocate
        64 KiB per request. 16 KiB covers a usual request in one read and keeps 38 threads'
        buffers under 1 MiB."""
        try:
            return self._thread.buffer
        except AttributeError:
            self._thread.buffer = bytearray(16 * 1024)
            return self._thread.buffer

    def _next_request_came(self, connection: Connection) -> bool:
        """Keep a keep-alive connection for a moment, unless requests wait with no worker free.

        A client on a keep-alive connection usually sends its next request within a fraction
        of a millisecond; reading it here saves two thread hand-offs per request. The read
        itself is the wait: the socket blocks, for at most KEEP_WAIT (its SO_RCVTIMEO), so
        waiting costs no system call of its own, and an idle client still costs no thread.
        A small request still arriving is read on until KEEP_WAIT has passed since the reply,
        and only whole, valid ones are served here: anything else goes back to the I/O thread.
        A client that let a wait pass (an agent's panel asks every few seconds) is not waited
        for again until it sends a request that quickly (`Connection.quick`).
        """
        if self.backlogged() or self.draining():
            return False  # others wait for a worker: this connection queues up like theirs
        deadline = None
        scratch = self._scratch()
        while True:
            # http.client and others send a POST's head and body in two writes: wait for both.
            taken = self.take_complete(connection) if connection.buffer else None
            if taken is not None:
                return taken
            if not connection.quick:
                return False  # it paused after its last answer: an agent's panel, say
            if deadline is None:
                deadline = time.monotonic() + KEEP_WAIT
            elif time.monotonic() >= deadline:
                return False
            try:
                count = connection.sock.recv_into(scratch)
            except BlockingIOError:  # nothing within KEEP_WAIT: the next time, no wait
                connection.quick = True if connection.buffer else None   # None: waited in vain
                return False
            except OSError:
                return False  # reset: the I/O thread finds out
            if not count:
                return False
            connection.buffer += memoryview(scratch)[:count]

    def answer(self, connection: Connection) -> bool:
        """Answer the connection's request; True when the connection stays open for another."""
        head, body = connection.head, connection.take_body()
        try:
            data = body.read(self.limits.read_timeout)  # a spooled body: loaded within budget
            if data is None:
                return self._refuse(connection, ServiceUnavailable(
                    "the server holds too many request bodies; retry shortly",
                    headers={"Retry-After": "1"}))
            address = connection.address[0] if isinstance(connection.address, tuple) else ""
            request = Request(head.method, head.target, head.headers, data, address)
            del data
            answered = threading.Lock()  # the reply or the watchdog's 504: whichever comes first
            reply = self.dispatch(request, partial(self._answer_early, connection, answered))
        finally:
            body.release()
        if not answered.acquire(blocking=False):
            return False  # the 504 went out at the time limit; this connection is done
        keep = head.keep_alive and not self.draining()
        data = encode_reply(reply, self.date(), keep, head_only=head.method == "HEAD")
        return send_reply(connection.sock, data, self.limits.send_timeout) and keep

    def _refuse(self, connection: Connection, exc: HTTPError) -> bool:
        refusal = self.refusal(exc, connection.head.headers if connection.head else None)
        send_reply(connection.sock, encode_reply(refusal, self.date(), keep_alive=False),
                   self.limits.send_timeout)
        return False

    def _answer_early(self, connection: Connection, answered: threading.Lock, reply: Reply) -> None:
        """Send `reply` now, from the runtime's watchdog, unless the function's answer went first."""
        if answered.acquire(blocking=False):
            data = encode_reply(reply, self.date(), keep_alive=False)
            if send_reply(connection.sock, data, self.limits.send_timeout):
                try:
                    connection.sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass  # the client left meanwhile


def send_reply(sock: socket.socket, data: bytes, timeout: float) -> bool:
    """Write a whole reply, starting with one send of all of it; False when the client is gone
    or has not taken it within `timeout` seconds. The socket blocks, each send for at most its
    SO_SNDTIMEO (the send timeout), so a reply that fits the send buffer costs one system call,
    and a client that takes a little now and then is cut off before twice the timeout."""
    view, sent, deadline = memoryview(data), 0, time.monotonic() + timeout
    try:
        while True:
            sent += sock.send(view[sent:])
            if sent >= len(data):
                return True
            if time.monotonic() >= deadline:
                return False
    except OSError:  # BlockingIOError: nothing taken for SO_SNDTIMEO; or the client is gone
        return False
