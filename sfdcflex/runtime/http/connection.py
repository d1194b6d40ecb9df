"""The I/O thread's side of a connection: read a request into a buffer, or linger after an error.

A connection moves through these states, all on the I/O thread except BUSY and PARKED:
WAITING (idle, or part of a head read) -> BODY (reading the body) -> BUSY (a worker has it)
-> PARKED on keep-alive (waiting for its next request in the workers' epoll, where the worker
woken for it reads it) or WAITING again (where workers cannot park it); or LINGERING after an
error answer, until it closes. A PARKED connection belongs to whoever takes it out of the
workers' epoll first: a worker for its next request, or the I/O thread to close it.

The pool is handed its settings and the app's two answers it needs (a route's body limit, the
refusal of a bad request), and asks the I/O loop for the rest through `Loop`.
"""
from __future__ import annotations

import logging
import socket
import time
from typing import Callable, Protocol

from ..errors import HTTPError, ServiceUnavailable
from ..response import Reply
from .body import Body, BodyBudget
from .http11 import Head, complete_head, encode_reply
from .limits import ServerLimits
from .sockets import KEEP_WAIT, prepare_socket, send_quietly, shut

log = logging.getLogger("sfdcflex")
WAITING, BODY, BUSY, PARKED, LINGERING = "waiting", "body", "busy", "parked", "lingering"
RECV_SIZE = 65536
# Big bodies (spooled or dropped) are read in big chunks: fewer turns of the I/O loop, so the
# I/O thread holds the GIL less while a client streams megabytes.
BULK_SIZE = 1024 * 1024
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def came_quickly(connection: Connection, now: float, keepalive_timeout: float) -> bool:
    """Whether a kept-alive connection's request, arriving `now`, came within KEEP_WAIT of the
    connection's last answer: a client that a worker should wait for after the next one. Its
    deadline was set (to keepalive_timeout ahead) when it was handed back to wait, which is the
    moment of the answer, unless a worker waited KEEP_WAIT for it in vain first (quick is None):
    then the request came later than KEEP_WAIT after the answer, however soon after the hand-back.
    (Counting from the hand-back, a client asking every 15 ms would be waited for in vain, 10 ms
    of a worker and a wake-up, after every answer.)"""
    return connection.quick is not None and now < connection.deadline - keepalive_timeout + KEEP_WAIT


class Connection:
    """One client connection: its socket, what has arrived, and where it is in a request."""

    __slots__ = ("sock", "address", "buffer", "state", "deadline", "head", "body", "linger_left",
                 "quick", "fresh")

    def __init__(self, sock: socket.socket, address: tuple | str) -> None:
        self.sock, self.address = sock, address
        # Whether the client sends its next request right after an answer (a worker then waits
        # KEEP_WAIT for it); False once it did not, until a request comes that quickly again;
        # None once a worker's wait for it ran out (see `came_quickly`).
        self.quick: bool | None = True
        # No request of it has been read yet: at the connection cap, it gives way after the idle
        # kept-alive ones (admission.py).
        self.fresh = True
        self.buffer = bytearray()
        self.state = WAITING
        self.deadline = 0.0
        self.head: Head | None = None
        self.body: Body | None = None
        self.linger_left = 0

    @property
    def received(self) -> int:
        """Bytes of the body being read that have arrived (0 when none is being read)."""
        return self.body.received if self.body is not None else 0

    def take_body(self) -> Body | None:
        """The request's body, for a worker: the connection holds it no more."""
        body, self.body = self.body, None
        return body


class Loop(Protocol):
    """What the connection pool asks of the I/O loop that drives it."""

    def watch(self, connection: Connection) -> None:
        """Call the pool's `readable` when the connection's socket has something to read (from
        the I/O thread, or from a worker through `rewatch`)."""

    def unwatch(self, connection: Connection) -> None:
        """Stop watching it (handed to a worker, or closed); no error when not watched."""

    def closed(self, connection: Connection) -> None:
        """A connection closed: there may be room for another."""

    def submit(self, connection: Connection) -> None:
        """A complete request: have a worker answer it and give the connection back."""

    def park(self, connection: Connection) -> None:
        """Have a worker read the connection's next request when it comes (OSError: cannot)."""

    def unpark(self, connection: Connection) -> bool:
        """Take a parked connection back: False when a worker has taken it meanwhile."""


# The app's answer to a request refused while it was read, given the head's headers if read.
Refusal = Callable[[HTTPError, list[tuple[str, str]] | None], Reply]
# The app's refusal of a request from its method, target and body length alone (None: read on).
HeadRefusal = Callable[[str, str, int], "HTTPError | None"]


class ConnectionPool:
    """Every open connection, driven by the I/O loop's thread."""

    def __init__(self, loop: Loop, limits: ServerLimits, *, head_refusal: HeadRefusal,
                 refusal: Refusal, date: Callable[[], str],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.loop, self.limits = loop, limits
        self.head_refusal, self.refusal, self.date, self.clock = head_refusal, refusal, date, clock
        self.open_connections: dict[int, Connection] = {}
        self.budget = BodyBudget(limits.max_body_memory)
        self._scratch = bytearray(BULK_SIZE)

    def has_room(self) -> bool:
        return len(self.open_connections) < self.limits.max_connections

    def open(self, sock: socket.socket, address: tuple | str, prepared: bool = False) -> Connection:
        """A newly accepted connection (`prepared`: it has the options `prepare_socket` sets,
        inherited from the listening socket); `resume` it to start reading."""
        if not prepared:
            prepare_socket(sock, self.limits)
        connection = Connection(sock, address)
        self.open_connections[id(connection)] = connection
        return connection

    def resume(self, connection: Connection) -> None:
        """Wait for the next request on `connection` (new, or given back after a reply, maybe
        with part of the next request read)."""
        connection.state, connection.head = WAITING, None
        limits = self.limits
        connection.deadline = self.clock() + (limits.read_timeout if connection.buffer
                                              else limits.keepalive_timeout)
        if not self._advance(connection) and id(connection) in self.open_connections:
            self.loop.watch(connection)

    def rewatch(self, connection: Connection) -> bool:
        """A worker's way back for a kept-alive connection: wait for its next request in the
        loop's selector, registered from the worker's own thread (False, and nothing done, when
        something is buffered: then the I/O thread must read on from it).

        An agent's panel sends a request every few seconds, each one past the worker's short
        keep-alive wait: registering here costs one epoll_ctl, where handing the connection to
        the I/O thread cost a wake-up, a turn of its loop and a thread switch per request. The
        deadline is set before the state, so the I/O thread's sweep never sees WAITING with an
        old deadline."""
        if connection.buffer:
            return False
        connection.head = None
        connection.deadline = self.clock() + self.limits.keepalive_timeout
        connection.state = WAITING
        self.loop.watch(connection)
        return True

    def park(self, connection: Connection) -> bool:
        """A worker's way back for a kept-alive connection where workers wait in an epoll:
        park it there, so that the worker woken for its next request reads and answers it
        (False, and nothing done, when something is buffered or it cannot be parked)."""
        if connection.buffer:
            return False
        connection.head = None
        connection.deadline = self.clock() + self.limits.keepalive_timeout
        connection.state = PARKED
        try:
            self.loop.park(connection)
        except (OSError, ValueError):  # the pool has stopped
            connection.state = BUSY
            return False
        return True

    def take_back(self, connection: Connection) -> bool:
        """Whether the I/O thread may close `connection` now: not while a worker has it (a
        parked one only once it is out of the workers' epoll)."""
        return connection.state != BUSY and (connection.state != PARKED or self.loop.unpark(connection))

    def readable(self, connection: Connection) -> None:
        try:
            if connection.state == BODY:
                received = connection.body.receive(connection.sock, self._scratch)
            elif connection.state == LINGERING:
                received = self._discard(connection)
            else:  # into the scratch buffer: recv(65536) would allocate 64 KiB per read
                received = connection.sock.recv_into(self._scratch, RECV_SIZE, socket.MSG_DONTWAIT)
                if received and not connection.buffer:
                    now, limits = self.clock(), self.limits
                    # An agent's panel asks every few seconds: no worker should wait for it.
                    connection.quick = came_quickly(connection, now, limits.keepalive_timeout)
                    connection.deadline = now + limits.read_timeout
                connection.buffer += memoryview(self._scratch)[:received]
        except BlockingIOError:
            return
        except OSError:
            received = 0  # reset by the client: no traceback for a client that left
        if not received:
            self.close(connection)
        elif connection.state != LINGERING:
            self._advance(connection)

    def _advance(self, connection: Connection) -> bool:
        """Go as far as the buffer allows; True once the connection left the I/O thread's
        reading (handed to a worker, or closed)."""
        if connection.state == BODY:
            return connection.body.complete and self._dispatch(connection)
        if connection.buffer[:2] == b"\r\n":
            del connection.buffer[:2]  # RFC 9112 §2.2: one empty line before a request is ignored
        try:
            found = complete_head(connection.buffer)
            if found is None:
                return False
            end, head = found
        except HTTPError as exc:
            self.reject(connection, exc, declared=None)
            return False  # lingering, or closed
        del connection.buffer[:end]
        # A body too large, or one no route would read (404, 405), is refused from the head
        # alone: not a byte of it is kept. (Without a body, the app answers as usual.)
        refused = self.head_refusal(head.method, head.target, head.length) if head.length else None
        if refused is not None:
            self.reject(connection, refused, declared=head.length, headers=head.headers,
                        head_only=head.method == "HEAD")
            return False
        connection.head = head
        return self._start_body(connection, head)

    def _start_body(self, connection: Connection, head: Head) -> bool:
        length, buffer = head.length, connection.buffer
        if length <= len(buffer):  # all here already (or no body): the usual case
            self._body_from_buffer(connection, length)
            return self._dispatch(connection)
        try:
            connection.body = Body.arriving(self.budget, length, buffer, self.limits.spool_threshold)
        except OSError as exc:  # out of descriptors or disk: refuse this one, keep serving
            log.warning("cannot spool a request body: %s", exc.strerror)
            self.reject(connection, ServiceUnavailable(
                "the server cannot take this request body now; retry shortly",
                headers={"Retry-After": "1"}), declared=length)
            return False
        buffer.clear()
        connection.state = BODY
        if head.expects_continue:
            send_quietly(connection.sock, CONTINUE)
        return False

    def _body_from_buffer(self, connection: Connection, length: int) -> None:
        connection.body = Body.whole(self.budget, bytes(connection.buffer[:length]))
        del connection.buffer[:length]

    def take_complete(self, connection: Connection) -> bool | None:
        """A worker's fast path on keep-alive: make the buffer's request the connection's next
        one when it is whole and valid (True); None while a small one is still arriving; False
        to leave everything else (big bodies, errors) to the I/O thread."""
        buffer = connection.buffer
        if buffer[:2] == b"\r\n":
            del buffer[:2]
        try:
            found = complete_head(buffer)
            if found is None:
                return None
            end, head = found
        except HTTPError:
            return False  # the I/O thread answers it, and lingers
        if head.length and (head.length > RECV_SIZE
                            or self.head_refusal(head.method, head.target, head.length)):
            return False  # the I/O thread refuses it from the head, as for a first request
        if end + head.length > len(buffer):
            return None
        del buffer[:end]
        connection.head = head
        self._body_from_buffer(connection, head.length)
        return True

    def _dispatch(self, connection: Connection) -> bool:
        self.loop.unwatch(connection)  # the worker owns the socket until it gives it back
        connection.state, connection.fresh = BUSY, False
        self.loop.submit(connection)
        return True

    # --- errors and lingering close ------------------------------------------------------

    def reject(self, connection: Connection, exc: HTTPError, declared: int | None,
               headers: list[tuple[str, str]] | None = None, head_only: bool = False) -> None:
        """Answer a request refused before its body was read, then linger.

        Closing at once would make the kernel reset the connection while the client is still
        sending (RFC 9112 §9.6), and a client that sends its whole body before reading would
        see a broken pipe instead of this answer. So: answer, stop writing, and read and drop
        what it sends, up to the declared length (bounded in bytes and time, as nginx does).
        The answer carries the app's CORS headers (`headers` is None when the head could not
        be read), so a browser on Flex sees the status rather than a CORS error.
        """
        log.info("%d - (request refused before its body was read: %s)", exc.status, exc.code)
        data = encode_reply(self.refusal(exc, headers), self.date(), keep_alive=False, head_only=head_only)
        self._release_body(connection)
        if not send_quietly(connection.sock, data):
            self.close(connection)
            return
        try:
            connection.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the client left meanwhile
        limits = self.limits
        # Unknown length (the head itself was bad): drop what comes until the client stops.
        left = limits.linger_bytes if declared is None else declared - len(connection.buffer)
        connection.buffer.clear()
        if left <= 0:
            self.close(connection)  # everything announced has arrived already
            return
        connection.state = LINGERING
        connection.linger_left = min(left, limits.linger_bytes)
        connection.deadline = self.clock() + limits.linger_seconds

    def _discard(self, connection: Connection) -> int:
        count = connection.sock.recv_into(self._scratch, 0, socket.MSG_DONTWAIT)
        connection.linger_left -= count
        if count and connection.linger_left <= 0:
            self.close(connection)  # all that was announced has arrived: the client reads now
        return count

    # --- timers and closing ----------------------------------------------------------------

    def sweep(self, now: float) -> None:
        """Close connections past their deadline: idle too long, too slow to send, or lingering."""
        for connection in list(self.open_connections.values()):
            if connection.deadline <= now and self.take_back(connection):
                self.close(connection)

    def close(self, connection: Connection) -> None:
        known = self.open_connections.pop(id(connection), None) is not None
        if connection.state != BUSY:
            self.loop.unwatch(connection)
        self._release_body(connection)
        try:
            connection.sock.close()
        except OSError:
            pass
        if known:
            self.loop.closed(connection)

    def _release_body(self, connection: Connection) -> None:
        body = connection.take_body()
        if body is not None:
            body.release()

    def close_idle(self) -> None:
        for connection in list(self.open_connections.values()):
            if connection.state in (WAITING, PARKED) and not connection.buffer \
                    and self.take_back(connection):
                self.close(connection)

    def in_flight(self) -> int:
        """Requests begun and not yet answered: being read, or with a worker."""
        return sum(1 for c in self.open_connections.values() if c.state in (BODY, BUSY)
                   or (c.state == WAITING and c.buffer))

    def close_all(self) -> None:
        for connection in list(self.open_connections.values()):
            if not self.take_back(connection):
                # A worker still writes to it: stop the socket, and let the worker close it,
                # so the descriptor number cannot be reused under the worker's feet.
                shut(connection.sock)
                self.open_connections.pop(id(connection), None)
            else:
                self.close(connection)
