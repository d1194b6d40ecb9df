"""The I/O thread's side of a connection: read a request into a buffer, or linger after an error.

A connection moves through these states, all on the I/O thread except BUSY:
WAITING (idle, or part of a head read) -> BODY (reading the body) -> BUSY (a worker has it)
-> WAITING again on keep-alive; or LINGERING after an error answer, until it closes.
"""
from __future__ import annotations

import logging
import socket
import tempfile
import threading
import time
from typing import TYPE_CHECKING, BinaryIO

from ..errors import HTTPError, PayloadTooLarge, ServiceUnavailable
from .http11 import Head, encode_reply, find_head, parse_head

if TYPE_CHECKING:
    from .server import FunctionsServer

log = logging.getLogger("sfdcflex")
WAITING, BODY, BUSY, LINGERING = "waiting", "body", "busy", "lingering"
RECV_SIZE = 65536
# Big bodies (spooled or dropped) are read in big chunks: fewer turns of the I/O loop, so the
# I/O thread holds the GIL less while a client streams megabytes.
BULK_SIZE = 1024 * 1024
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class BodyBudget:
    """Bytes of request bodies held in memory at once, across connections and workers.

    A reservation that does not fit waits (workers) or is refused (the I/O thread spools the
    body to a file instead). One body alone always fits, so a limit below the largest
    allowed body slows big requests down rather than refusing them for ever.
    """

    def __init__(self, limit: int) -> None:
        self.limit, self.held = limit, 0
        self._changed = threading.Condition()

    def try_reserve(self, size: int) -> bool:
        with self._changed:
            if self.held and self.held + size > self.limit:
                return False
            self.held += size
            return True

    def reserve(self, size: int, timeout: float) -> bool:
        with self._changed:
            if not self._changed.wait_for(lambda: not self.held or self.held + size <= self.limit,
                                          timeout):
                return False
            self.held += size
            return True

    def release(self, size: int) -> None:
        if size:
            with self._changed:
                self.held -= size
                self._changed.notify_all()


class Connection:
    """One client connection: its socket, what has arrived, and where it is in a request."""

    __slots__ = ("sock", "address", "buffer", "state", "deadline", "head", "body", "received",
                 "reserved", "linger_left")

    def __init__(self, sock: socket.socket, address: tuple) -> None:
        self.sock, self.address = sock, address
        self.buffer = bytearray()
        self.state = WAITING
        self.deadline = 0.0
        self.head: Head | None = None
        self.body: bytes | bytearray | BinaryIO | None = None  # BinaryIO: spooled to a file
        self.received = 0
        self.reserved = 0
        self.linger_left = 0

    def take_body(self) -> tuple[object, int]:
        """The body (bytes, or a spooled file) and its memory reservation, for a worker."""
        body, reserved = self.body, self.reserved
        self.body, self.reserved, self.received = None, 0, 0
        return (b"" if body is None else body), reserved


class ConnectionPool:
    """Every open connection, driven by the server's I/O thread."""

    def __init__(self, server: FunctionsServer) -> None:
        self.server = server
        self.open_connections: dict[int, Connection] = {}
        self.budget = BodyBudget(server.limits.max_body_memory)
        self._scratch = bytearray(BULK_SIZE)

    def has_room(self) -> bool:
        return len(self.open_connections) < self.server.limits.max_connections

    def open(self, sock: socket.socket, address: tuple) -> Connection:
        """A newly accepted connection; `resume` it to start reading."""
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # not TCP: nothing to tune
        connection = Connection(sock, address)
        self.open_connections[id(connection)] = connection
        return connection

    def resume(self, connection: Connection) -> None:
        """Wait for the next request on `connection` (new, or given back after a reply)."""
        connection.state, connection.head = WAITING, None
        connection.deadline = time.monotonic() + self.server.limits.keepalive_timeout
        if not self._advance(connection) and id(connection) in self.open_connections:
            self.server.watch(connection)

    def readable(self, connection: Connection) -> None:
        try:
            if connection.state == BODY:
                received = self._read_body(connection)
            elif connection.state == LINGERING:
                received = self._discard(connection)
            else:  # into the scratch buffer: recv(65536) would allocate 64 KiB per read
                received = connection.sock.recv_into(self._scratch, RECV_SIZE)
                if received and not connection.buffer:
                    connection.deadline = time.monotonic() + self.server.limits.read_timeout
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
            return self._body_complete(connection)
        if connection.buffer[:2] == b"\r\n":
            del connection.buffer[:2]  # RFC 9112 §2.2: one empty line before a request is ignored
        try:
            end = find_head(connection.buffer)
            if end < 0:
                return False
            head = parse_head(bytes(connection.buffer[:end]))
        except HTTPError as exc:
            self.reject(connection, exc, declared=None)
            return False  # lingering, or closed
        del connection.buffer[:end]
        limit = self.server.app.max_body_for(head.path)
        if head.length > limit:
            # Refused from Content-Length alone: not a byte of the body is kept.
            self.reject(connection, PayloadTooLarge(f"request bodies are limited to {limit} bytes"),
                        declared=head.length, headers=head.headers)
            return False
        connection.head = head
        return self._start_body(connection, head)

    def _start_body(self, connection: Connection, head: Head) -> bool:
        length, buffer = head.length, connection.buffer
        limits = self.server.limits
        if length <= len(buffer):  # all here already (or no body): the usual case
            self._body_from_buffer(connection, length)
            return self._dispatch(connection)
        if length <= limits.spool_threshold and self.budget.try_reserve(length):
            connection.body, connection.reserved = bytearray(length), length
            connection.body[:len(buffer)] = buffer
        else:  # big, or the memory budget is spent: to disk, as waitress does
            try:
                connection.body = tempfile.TemporaryFile(prefix="sfdcflex-body-")
                connection.body.write(buffer)
            except OSError as exc:  # out of descriptors or disk: refuse this one, keep serving
                log.warning("cannot spool a request body: %s", exc.strerror)
                self.reject(connection, ServiceUnavailable(
                    "the server cannot take this request body now; retry shortly",
                    headers={"Retry-After": "1"}), declared=length)
                return False
        connection.received = len(buffer)
        buffer.clear()
        connection.state = BODY
        if head.expects_continue:
            _send_quietly(connection.sock, CONTINUE)
        return False

    def _body_from_buffer(self, connection: Connection, length: int) -> None:
        if not length:
            connection.body, connection.reserved = b"", 0
            return
        connection.body = bytes(connection.buffer[:length])
        del connection.buffer[:length]
        connection.reserved = length if self.budget.try_reserve(length) else 0

    def take_complete(self, connection: Connection) -> bool | None:
        """A worker's fast path on keep-alive: make the buffer's request the connection's next
        one when it is whole and valid (True); None while a small one is still arriving; False
        to leave everything else (big bodies, errors) to the I/O thread."""
        buffer = connection.buffer
        if buffer[:2] == b"\r\n":
            del buffer[:2]
        try:
            end = find_head(buffer)
            if end < 0:
                return None
            head = parse_head(bytes(buffer[:end]))
        except HTTPError:
            return False  # the I/O thread answers it, and lingers
        if head.length > min(RECV_SIZE, self.server.app.max_body_for(head.path)):
            return False
        if end + head.length > len(buffer):
            return None
        del buffer[:end]
        connection.head = head
        self._body_from_buffer(connection, head.length)
        return True

    def _read_body(self, connection: Connection) -> int:
        remaining = connection.head.length - connection.received
        body = connection.body
        if isinstance(body, bytearray):
            count = connection.sock.recv_into(memoryview(body)[connection.received:], remaining)
        else:
            count = connection.sock.recv_into(self._scratch, min(remaining, BULK_SIZE))
            body.write(memoryview(self._scratch)[:count])
        connection.received += count
        return count

    def _body_complete(self, connection: Connection) -> bool:
        if connection.received < connection.head.length:
            return False
        if not isinstance(connection.body, bytearray):
            connection.body.seek(0)
        return self._dispatch(connection)

    def _dispatch(self, connection: Connection) -> bool:
        self.server.unwatch(connection)  # the worker owns the socket until it gives it back
        connection.state = BUSY
        self.server.workers.submit(connection)
        return True

    # --- errors and lingering close ------------------------------------------------------

    def reject(self, connection: Connection, exc: HTTPError, declared: int | None,
               headers: list[tuple[str, str]] | None = None) -> None:
        """Answer a request refused before its body was read, then linger.

        Closing at once would make the kernel reset the connection while the client is still
        sending (RFC 9112 §9.6), and a client that sends its whole body before reading would
        see a broken pipe instead of this answer. So: answer, stop writing, and read and drop
        what it sends, up to the declared length (bounded in bytes and time, as nginx does).
        The answer carries the app's CORS headers (`headers` is None when the head could not
        be read), so a browser on Flex sees the status rather than a CORS error.
        """
        log.info("%d - (request rejected before routing: %s)", exc.status, exc.code)
        data = encode_reply(self.server.app.refusal(exc, headers), self.server.http_date.now(),
                            keep_alive=False)
        self._release_body(connection)
        if not _send_quietly(connection.sock, data):
            self.close(connection)
            return
        try:
            connection.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the client left meanwhile
        limits = self.server.limits
        # Unknown length (the head itself was bad): drop what comes until the client stops.
        left = limits.linger_bytes if declared is None else declared - len(connection.buffer)
        connection.buffer.clear()
        if left <= 0:
            self.close(connection)  # everything announced has arrived already
            return
        connection.state = LINGERING
        connection.linger_left = min(left, limits.linger_bytes)
        connection.deadline = time.monotonic() + limits.linger_seconds

    def _discard(self, connection: Connection) -> int:
        count = connection.sock.recv_into(self._scratch)
        connection.linger_left -= count
        if count and connection.linger_left <= 0:
            self.close(connection)  # all that was announced has arrived: the client reads now
        return count

    # --- timers and closing ----------------------------------------------------------------

    def sweep(self, now: float) -> None:
        """Close connections past their deadline: idle too long, too slow to send, or lingering."""
        for connection in list(self.open_connections.values()):
            if connection.state != BUSY and connection.deadline <= now:
                self.close(connection)

    def close(self, connection: Connection) -> None:
        known = self.open_connections.pop(id(connection), None) is not None
        if connection.state != BUSY:
            self.server.unwatch(connection)
        self._release_body(connection)
        try:
            connection.sock.close()
        except OSError:
            pass
        if known:
            self.server.connection_closed()

    def _release_body(self, connection: Connection) -> None:
        body, reserved = connection.take_body()
        self.budget.release(reserved)
        if hasattr(body, "close"):
            body.close()

    def close_idle(self) -> None:
        for connection in list(self.open_connections.values()):
            if connection.state == WAITING and not connection.buffer:
                self.close(connection)

    def in_flight(self) -> int:
        """Requests begun and not yet answered: being read, or with a worker."""
        return sum(1 for c in self.open_connections.values() if c.state in (BODY, BUSY)
                   or (c.state == WAITING and c.buffer))

    def close_all(self) -> None:
        for connection in list(self.open_connections.values()):
            if connection.state == BUSY:
                # A worker still writes to it: stop the socket, and let the worker close it,
                # so the descriptor number cannot be reused under the worker's feet.
                _shut(connection.sock)
                self.open_connections.pop(id(connection), None)
            else:
                self.close(connection)


def _send_quietly(sock: socket.socket, data: bytes) -> bool:
    """One non-blocking send of a short answer on an idle socket; False when the client left."""
    try:
        return sock.send(data) == len(data)
    except OSError:
        return False


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed
