"""The connection pool in process, as waitress's test_channel.py tests its channel: a fake I/O loop
records what the pool asks of it, and each connection is one end of a socket.socketpair().

Heads and bodies read into buffers, bodies in memory or spooled within the memory budget, the
worker's keep-alive fast path (take_complete), refusals before routing and their lingering close.
"""
from __future__ import annotations

import errno
import logging
import re
import select
import socket

import pytest

from sfdcflex.runtime.app import error_reply
from sfdcflex.runtime.errors import HTTPError, NotFound, PayloadTooLarge
from sfdcflex.runtime.http.connection import (BODY, BUSY, CONTINUE, LINGERING, WAITING, Connection,
                                              ConnectionPool)
from sfdcflex.runtime.http.http11 import HttpDate
from sfdcflex.runtime.http.limits import ServerLimits
from tests.support.sockets import Replies, request

MAX_BODY = 100        # the runtime's limit in these tests
ECHO_LIMIT = 1000     # /echo's own, larger limit
LINGER_BYTES = 1_000_000
BODY_LIMITS = {"/echo": ECHO_LIMIT, "/big": 6 * 1024 * 1024}
NO_ROUTE = "/nope"


def head_refusal(method: str, target: str, length: int) -> HTTPError | None:
    """The app's side (App.head_refusal): a body over its route's limit; a path nothing answers."""
    path = target.split("?", 1)[0]
    limit = BODY_LIMITS.get(path, MAX_BODY)
    if length > limit:
        return PayloadTooLarge(f"request bodies are limited to {limit} bytes")
    return NotFound(f"no function or asset at {path}", code="not_found") if path == NO_ROUTE else None


class FakeLoop:
    """The I/O loop's side of the pool's Loop protocol: it only records what it is asked."""

    def __init__(self) -> None:
        self.watched: set[int] = set()
        self.closed_ones: list[Connection] = []
        self.submitted: list[Connection] = []

    def watch(self, connection: Connection) -> None:
        self.watched.add(id(connection))

    def unwatch(self, connection: Connection) -> None:
        self.watched.discard(id(connection))

    def closed(self, connection: Connection) -> None:
        self.closed_ones.append(connection)

    def submit(self, connection: Connection) -> None:
        self.submitted.append(connection)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """A pool on a fake loop and a settable clock; `send` delivers bytes as the loop would."""

    def __init__(self, **limits) -> None:
        self.loop, self.clock = FakeLoop(), Clock()
        settings = {"linger_seconds": 30.0, "linger_bytes": LINGER_BYTES, **limits}
        self.pool = ConnectionPool(self.loop, ServerLimits(**settings),
                                   head_refusal=head_refusal,
                                   refusal=lambda exc, headers: error_reply(exc),
                                   date=HttpDate().now, clock=self.clock)
        self.clients: list[socket.socket] = []

    def connect(self) -> tuple[socket.socket, Connection]:
        client, ours = socket.socketpair()
        client.settimeout(2.0)
        self.clients.append(client)
        connection = self.pool.open(ours, ("127.0.0.1", 40000 + len(self.clients)))
        self.pool.resume(connection)
        return client, connection

    def send(self, client: socket.socket, connection: Connection, data: bytes) -> None:
        for start in range(0, len(data), 65536):  # no more at once than the socket buffers hold
            client.sendall(data[start:start + 65536])
            self.pump(connection)

    def pump(self, connection: Connection) -> None:
        """Call `readable` while the loop watches the connection and its socket has data."""
        while id(connection) in self.loop.watched and select.select([connection.sock], [], [], 0)[0]:
            self.pool.readable(connection)

    def is_open(self, connection: Connection) -> bool:
        return id(connection) in self.pool.open_connections

    def close(self) -> None:
        self.pool.close_all()
        for client in self.clients:
            client.close()


@pytest.fixture
def harness():
    made: list[Harness] = []

    def make(**limits) -> Harness:
        made.append(Harness(**limits))
        return made[-1]

    yield make
    for each in made:
        each.close()


def no_errors_logged(caplog) -> bool:
    return not [r for r in caplog.records if r.levelno >= logging.ERROR]


# --- heads and bodies into buffers --------------------------------------------------------------

def test_an_empty_line_before_a_first_request_is_ignored(harness):
    h = harness()
    client, connection = h.connect()
    h.send(client, connection, b"\r\n" + request("GET", "/hello"))
    assert h.loop.submitted == [connection] and connection.state == BUSY
    assert connection.head.path == "/hello" and id(connection) not in h.loop.watched
    assert connection.head.method == "GET"  # only the empty line dropped, not the method's "G"


def test_a_body_of_exactly_the_limit_is_taken(harness):
    h = harness()
    client, connection = h.connect()
    h.send(client, connection, request("POST", "/hello", b"z" * MAX_BODY))
    assert h.loop.submitted == [connection]
    assert connection.take_body().read(1.0) == b"z" * MAX_BODY


def test_a_body_arriving_after_its_head_is_read_into_memory_and_then_handed_over(harness):
    h = harness()
    client, connection = h.connect()
    h.send(client, connection, request("POST", "/echo", length=500) + b"a" * 200)
    assert connection.state == BODY and connection.received == 200 and not h.loop.submitted
    assert not connection.body.spooled and h.pool.budget.held == 500
    h.send(client, connection, b"b" * 300)
    assert h.loop.submitted == [connection]
    body = connection.take_body()
    assert body.read(1.0) == b"a" * 200 + b"b" * 300
    body.release()
    assert h.pool.budget.held == 0


def test_bodies_past_the_threshold_are_spooled_and_memory_stays_in_budget(harness):
    h = harness(spool_threshold=4096, max_body_memory=16 * 1024)
    budget = h.pool.budget
    big = b'{"a": "' + b"b" * 100_000 + b'"}'
    spooled = [h.connect() for _ in range(5)]
    for client, connection in spooled:  # five bodies half sent: on disk, not in memory
        h.send(client, connection, request("POST", "/big", length=len(big)) + big[:50_000])
    assert sum(connection.received for _, connection in spooled) == 250_000
    assert budget.held == 0 and all(connection.body.spooled for _, connection in spooled)
    small = [h.connect() for _ in range(6)]  # 6 x 3 KiB in memory: the budget is full at five
    for client, connection in small:
        h.send(client, connection, request("POST", "/big", length=3000) + b"{")
    assert budget.held == 5 * 3000
    assert [connection.body.spooled for _, connection in small] == [False] * 5 + [True]
    for client, connection in small:
        h.send(client, connection, b'"a":"' + b"x" * 2992 + b'"}')
    for client, connection in spooled:
        h.send(client, connection, big[50_000:] + b"\r\n")  # an empty line after a body is allowed
    assert len(h.loop.submitted) == 11
    small_body = b'{"a":"' + b"x" * 2992 + b'"}'
    for client, connection in small + spooled:  # what workers do, one after the other
        body = connection.take_body()
        assert body.read(1.0) == (big if (client, connection) in spooled else small_body)
        body.release()
    assert budget.held == 0
    for client, connection in spooled:  # given back for keep-alive: the empty line is dropped
        h.pool.resume(connection)
        h.pump(connection)
        assert connection.state == WAITING and not connection.buffer and h.is_open(connection)


def test_a_client_that_waits_for_100_continue_gets_it_and_then_sends(harness):
    h = harness()
    client, connection = h.connect()
    h.send(client, connection,
           b"POST /hello HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    assert client.recv(100) == CONTINUE
    h.send(client, connection, b"{}")
    assert h.loop.submitted == [connection]


class FlagsSeen:
    """A socket that records whether each read and write was asked not to wait."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.waiting_calls, self.calls = sock, [], 0

    def recv_into(self, buffer, size=0, flags=0):
        return self._call("recv_into", flags, buffer, size, flags)

    def send(self, data, flags=0):
        return self._call("send", flags, data, flags)

    def _call(self, name, flags, *args):
        self.calls += 1
        if not flags & socket.MSG_DONTWAIT:
            self.waiting_calls.append(name)
        return getattr(self.sock, name)(*args)

    def __getattr__(self, name: str):
        return getattr(self.sock, name)


def test_the_io_thread_never_waits_on_a_socket_that_blocks(harness):
    """Accepted sockets block (the workers' reads and writes wait in the kernel, SO_RCVTIMEO and
    SO_SNDTIMEO), so every read and write of the I/O thread says MSG_DONTWAIT."""
    h = harness()
    client, connection = h.connect()
    assert connection.sock.gettimeout() is None    # blocking: no poll() before each call
    connection.sock = seen = FlagsSeen(connection.sock)
    h.pool.readable(connection)                    # a wake-up with nothing to read
    h.send(client, connection, b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 600\r\n\r\n")
    h.send(client, connection, b"x" * 600)         # the body, after the 100 Continue
    assert h.loop.submitted == [connection]
    other, lingering = h.connect()
    lingering.sock = seen_too = FlagsSeen(lingering.sock)
    h.send(other, lingering, request("POST", "/hello", length=MAX_BODY + 1))  # refused: 413, lingers
    h.send(other, lingering, b"y" * 50)
    assert seen.calls >= 4 and seen_too.calls >= 2
    assert seen.waiting_calls == [] and seen_too.waiting_calls == []


def test_a_request_that_comes_right_after_the_last_answer_marks_the_client_quick(harness):
    h = harness()
    client, connection = h.connect()
    for pause, quick in ((0.002, True), (3.0, False), (0.0, True)):
        connection.state = BUSY                      # a worker answered; it gives the connection back
        h.loop.unwatch(connection)
        h.pool.resume(connection)
        h.clock.now += pause
        h.send(client, connection, request("GET", "/hello"))
        assert h.loop.submitted[-1] is connection and connection.quick is quick


def test_a_request_soon_after_a_wait_that_ran_out_is_not_quick(harness):
    """A worker waited KEEP_WAIT for the next request in vain (quick None) and then gave the
    connection back: a request 2 ms after that came 12 ms after the answer."""
    h = harness()
    client, connection = h.connect()
    connection.state, connection.quick = BUSY, None
    h.loop.unwatch(connection)
    h.pool.resume(connection)
    h.clock.now += 0.002
    h.send(client, connection, request("GET", "/hello"))
    assert h.loop.submitted[-1] is connection and connection.quick is False


def test_no_descriptor_for_a_spool_file_is_503_and_the_pool_goes_on(harness, monkeypatch):
    h = harness(spool_threshold=1024)

    def no_descriptors(*args, **kwargs):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr("sfdcflex.runtime.http.body.tempfile.TemporaryFile", no_descriptors)
    client, connection = h.connect()
    h.send(client, connection, request("POST", "/big", length=5000) + b"{")
    head, _ = Replies(client).next()
    assert head.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1" in head
    monkeypatch.undo()
    client, connection = h.connect()
    h.send(client, connection, request("GET", "/hello"))
    assert h.loop.submitted == [connection]


# --- the worker's keep-alive fast path: take_complete -------------------------------------------

def test_a_pipelined_request_after_an_empty_line_is_taken_whole_by_the_worker(harness):
    """An empty line skipped, a body of exactly the route's own limit (not the runtime's), a
    buffer holding exactly the request: taken whole, its body with it."""
    h = harness()
    _, connection = h.connect()
    body = b'{"a": "' + b"x" * (ECHO_LIMIT - 10) + b'"} '
    assert len(body) == ECHO_LIMIT
    whole = b"\r\n" + request("POST", "/echo", body, content_type="application/json")
    connection.buffer += whole[:-1]
    assert h.pool.take_complete(connection) is None  # still arriving: the worker waits
    connection.buffer += whole[-1:]
    assert h.pool.take_complete(connection) is True
    assert connection.head.path == "/echo" and not connection.buffer
    assert connection.take_body().read(1.0) == body


def test_a_pipelined_bad_head_goes_back_to_the_io_thread_which_refuses_and_lingers(harness):
    h = harness()
    client, connection = h.connect()
    connection.state = BUSY  # as with a worker: it read this after its answer
    h.loop.unwatch(connection)
    connection.buffer += b"GET /hello HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n"
    assert h.pool.take_complete(connection) is False
    h.pool.resume(connection)  # given back to the I/O thread
    head, _ = Replies(client).next()
    assert head.startswith(b"HTTP/1.1 400")
    assert connection.state == LINGERING and id(connection) in h.loop.watched
    client.shutdown(socket.SHUT_WR)  # the client stops: the lingering pool closes
    h.pump(connection)
    assert not h.is_open(connection) and h.loop.closed_ones == [connection]


def test_a_pipelined_request_over_the_limit_is_refused_by_the_io_thread(harness, caplog):
    caplog.set_level(logging.INFO, logger="sfdcflex")
    h = harness()
    client, connection = h.connect()
    connection.state = BUSY
    h.loop.unwatch(connection)
    connection.buffer += request("POST", "/hello", length=5000)
    assert h.pool.take_complete(connection) is False
    h.pool.resume(connection)
    head, body = Replies(client).next()
    assert head.startswith(b"HTTP/1.1 413")
    assert f"request bodies are limited to {MAX_BODY} bytes" in body.decode()
    assert b"\r\nConnection: close" in head
    assert re.search(rb"\r\nDate: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", head)
    assert "413 - (request refused before its body was read: payload_too_large)" in caplog.messages
    h.send(client, connection, b"y" * 5000)  # all it announced: the pool stops lingering
    assert not h.is_open(connection)
    assert no_errors_logged(caplog)


def test_take_complete_leaves_big_bodies_and_bad_heads_to_the_io_thread(harness):
    h = harness()
    _, connection = h.connect()
    connection.buffer += request("POST", "/echo", length=ECHO_LIMIT + 1)
    assert h.pool.take_complete(connection) is False
    assert connection.buffer.startswith(b"POST /echo")  # nothing taken from the buffer
    connection.buffer[:] = b"GET /hel"
    assert h.pool.take_complete(connection) is None


# --- refusals before routing and lingering close ------------------------------------------------

def test_route_limit_applies_from_content_length_before_the_body(harness):
    h = harness()
    client, connection = h.connect()  # the body never comes: no wait for it
    h.send(client, connection, request("POST", "/echo", length=ECHO_LIMIT + 1))
    assert Replies(client).next()[0].startswith(b"HTTP/1.1 413 ")
    client, connection = h.connect()
    h.send(client, connection, request("POST", "/echo", b"b" * ECHO_LIMIT))
    assert h.loop.submitted == [connection]


def test_a_body_to_no_route_is_refused_from_the_head_on_either_path(harness, caplog):
    """The I/O thread answers 404 before the body and lingers; the worker's fast path leaves
    even a small, whole such request to it, so that neither path reads a body nothing wants."""
    caplog.set_level(logging.INFO, logger="sfdcflex")
    h = harness()
    client, connection = h.connect()
    h.send(client, connection, request("POST", NO_ROUTE, length=MAX_BODY))
    head, body = Replies(client).next()
    assert head.startswith(b"HTTP/1.1 404 ") and b"not_found" in body
    assert connection.state == LINGERING and connection.body is None and not h.loop.submitted
    assert "404 - (request refused before its body was read: not_found)" in caplog.messages
    client, connection = h.connect()
    connection.state = BUSY  # a worker read it after its answer
    h.loop.unwatch(connection)
    connection.buffer += request("POST", NO_ROUTE, b"x" * 10)
    assert h.pool.take_complete(connection) is False
    assert connection.buffer.startswith(b"POST /nope")  # nothing taken from the buffer
    h.pool.resume(connection)
    assert Replies(client).next()[0].startswith(b"HTTP/1.1 404 ")
    assert not h.is_open(connection)  # everything it announced had come: closed at once
    client, connection = h.connect()  # without a body, the app answers it as usual
    h.send(client, connection, request("GET", NO_ROUTE))
    assert h.loop.submitted == [connection]


def test_the_bare_lf_head_is_answered_before_it_ends(harness):
    # A client sending LF-only lines never sends CRLF CRLF: it must not wait for the read timeout.
    h = harness()
    client, connection = h.connect()
    h.send(client, connection, b"GET /hello HTTP/1.1\nHost: x\n")
    assert client.recv(100).startswith(b"HTTP/1.1 400 ")


def test_lingering_counts_what_came_with_the_head_and_ends_when_all_announced_came(harness, caplog):
    h = harness()
    client, connection = h.connect()
    h.send(client, connection, request("POST", "/hello", b"y" * 1000, length=5000))
    head, _ = Replies(client).next()
    assert head.startswith(b"HTTP/1.1 413")
    assert connection.state == LINGERING and connection.linger_left == 4000
    assert connection.deadline == h.clock.now + 30  # linger_seconds is 30
    h.send(client, connection, b"y" * 3999)
    assert connection.linger_left == 1 and h.is_open(connection)  # one byte still to come
    h.send(client, connection, b"y")
    assert not h.is_open(connection)
    assert no_errors_logged(caplog)


def test_a_refused_request_whose_body_came_whole_is_closed_at_once(harness, caplog):
    h = harness()
    client, connection = h.connect()
    h.send(client, connection, request("POST", "/hello", b"y" * 500))
    head, _ = Replies(client).next()
    assert head.startswith(b"HTTP/1.1 413")
    assert not h.is_open(connection) and h.loop.closed_ones == [connection]
    assert no_errors_logged(caplog)


def test_a_refused_request_with_one_byte_to_come_lingers(harness):
    h = harness()
    client, connection = h.connect()
    h.send(client, connection, request("POST", "/hello", b"y" * 499, length=500))
    assert Replies(client).next()[0].startswith(b"HTTP/1.1 413")
    assert connection.state == LINGERING and connection.linger_left == 1


def test_a_bad_head_lingers_for_up_to_linger_bytes(harness, caplog):
    h = harness()
    client, connection = h.connect()
    h.send(client, connection, b"GET /hello HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
    assert Replies(client).next()[0].startswith(b"HTTP/1.1 400")
    assert connection.state == LINGERING and connection.linger_left == LINGER_BYTES
    assert no_errors_logged(caplog)


def test_lingering_is_bounded_in_time(harness):
    h = harness(linger_seconds=0.3)
    client, connection = h.connect()
    h.send(client, connection, request("POST", "/echo", length=9_999_999))
    assert Replies(client).next()[0].startswith(b"HTTP/1.1 413 ")
    assert client.recv(100) == b""  # the pool stops writing at once
    h.clock.now += 0.29
    h.pool.sweep(h.clock.now)
    assert h.is_open(connection)
    h.clock.now += 0.02
    h.pool.sweep(h.clock.now)
    assert not h.is_open(connection)
