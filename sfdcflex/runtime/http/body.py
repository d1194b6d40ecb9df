"""A request body: bytes in memory, or a temporary file past a threshold (waitress's buffers.py).

Every byte of a body held in memory is counted against one BodyBudget shared by every
connection and worker, so many large requests at once cost disk, not unbounded memory.
"""
from __future__ import annotations

import socket
import tempfile
import threading
from typing import BinaryIO


# A body this small that came whole with its head is not counted: counting it would cost every
# request a lock and a notify, and what it holds is bounded anyway, by the connections (each
# buffer takes at most one read) times this size: 16 MiB at the default 1,000 connections.
SMALL_BODY = 16 * 1024


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


class Body:
    """One request's body of a known length: in memory while small and within the budget,
    else spooled to a temporary file; `release` gives back its memory and its file."""

    __slots__ = ("length", "received", "reserved", "_budget", "_memory", "_file")

    def __init__(self, budget: BodyBudget, length: int) -> None:
        self.length, self.received, self.reserved = length, 0, 0
        self._budget = budget
        self._memory: bytes | bytearray = b""
        self._file: BinaryIO | None = None

    @classmethod
    def whole(cls, budget: BodyBudget, data: bytes) -> Body:
        """A body that arrived with its head. It is in memory already: counted when it fits,
        and not refused when it does not (refusing would not free what is held); one of at
        most SMALL_BODY bytes is not counted at all."""
        body = cls(budget, len(data))
        body._memory, body.received = data, len(data)
        if len(data) > SMALL_BODY and budget.try_reserve(len(data)):
            body.reserved = len(data)
        return body

    @classmethod
    def arriving(cls, budget: BodyBudget, length: int, first: bytes | bytearray,
                 spool_threshold: int) -> Body:
        """A body still arriving, of which `first` came with the head: in memory up to
        `spool_threshold` bytes when the budget has room, else in a temporary file (as
        waitress does). Raises OSError when no file can be had (out of descriptors or disk)."""
        body = cls(budget, length)
        if length <= spool_threshold and budget.try_reserve(length):
            body.reserved = length
            body._memory = bytearray(length)
            body._memory[:len(first)] = first
        else:
            body._file = tempfile.TemporaryFile(prefix="sfdcflex-body-")
            try:
                body._file.write(first)
            except OSError:
                body.release()
                raise
        body.received = len(first)
        return body

    @property
    def complete(self) -> bool:
        return self.received >= self.length

    @property
    def spooled(self) -> bool:
        return self._file is not None

    def receive(self, sock: socket.socket, scratch: bytearray) -> int:
        """Read what the socket has of the rest (a file takes it through `scratch`); the count
        read, 0 when the client closed; never waits (the I/O thread calls it). Raises what
        recv_into raises."""
        remaining = self.length - self.received
        if self._file is None:
            count = sock.recv_into(memoryview(self._memory)[self.received:], remaining, socket.MSG_DONTWAIT)
        else:
            count = sock.recv_into(scratch, min(remaining, len(scratch)), socket.MSG_DONTWAIT)
            self._file.write(memoryview(scratch)[:count])
        self.received += count
        return count

    def read(self, timeout: float) -> bytes | None:
        """The whole body as bytes. A spooled one is loaded within the memory budget, waiting up
        to `timeout` seconds for room: None when there is none by then."""
        if self._file is None:
            return bytes(self._memory)
        if not self._budget.reserve(self.length, timeout):
            return None
        self.reserved = self.length
        self._file.seek(0)
        return self._file.read()

    def release(self) -> None:
        """Give back its memory reservation and close its file; it holds nothing after."""
        self._budget.release(self.reserved)
        self.reserved, self._memory = 0, b""
        if self._file is not None:
            self._file.close()
            self._file = None
