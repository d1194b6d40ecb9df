"""Mutation-testing survivors of the connection pool's limits (issue 18), killed over loopback
sockets: the worker's keep-alive fast path (take_complete), what goes back to the I/O thread,
refusals before routing and their lingering close (reject, _discard), and BodyBudget directly."""
from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time

import pytest

from sfdcflex.runtime.app import Limits
from sfdcflex.runtime.http.body import BodyBudget
from sfdcflex.runtime.http.connection import LINGERING
from sfdcflex.runtime.http.limits import ServerLimits
from tests.runtime.http.test_server_bounds import wait_until

MAX_BODY = 100        # the runtime's limit in these tests
ECHO_LIMIT = 1000     # /echo's own, larger limit
LINGER_BYTES = 1_000_000
_pending: dict[int, bytes] = {}  # what arrived past one answer, per socket (pipelining)


@pytest.fixture
def served(serve):
    return serve(limits=Limits(max_body=MAX_BODY), body_limits={"/echo": ECHO_LIMIT},
                 server_limits=ServerLimits(linger_seconds=30.0, linger_bytes=LINGER_BYTES))


def connect(url: str) -> socket.socket:
    host, port = url.split("//")[1].split(":")
    sock = socket.create_connection((host, int(port)), timeout=5.0)
    _pending.pop(sock.fileno(), None)
    return sock


def request(method: str, path: str, body: bytes = b"", length: int | None = None,
            content_type: str = "text/plain") -> bytes:
    length = len(body) if length is None else length
    return (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {length}\r\n\r\n").encode() + body


def read_one(sock: socket.socket) -> tuple[bytes, bytes]:
    """One whole response (head, body) off a connection, by its Content-Length."""
    data = _pending.pop(sock.fileno(), b"")
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a whole head: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed before a whole body"
        body += chunk
    if len(body) > length:
        _pending[sock.fileno()] = body[length:]
    return head, body[:length]




def only_connection(served):
    pool = served.server.connections
    assert wait_until(lambda: len(pool.open_connections) == 1)
    return next(iter(pool.open_connections.values()))


def spy_take_complete(served) -> list:
    pool, results = served.server.connections, []
    real = pool.take_complete

    def spy(connection):
        results.append(real(connection))
        return results[-1]

    served.server.responder.take_complete = spy
    return results


def no_errors_logged(caplog) -> bool:
    return not [r for r in caplog.records if r.levelno >= logging.ERROR]


# --- the worker's fast path: take_complete ----------------------------------------------------

def test_a_pipelined_request_after_an_empty_line_is_taken_whole_by_the_worker(served):
    """take_complete 2, 4, 5 (the empty line), 14 (a body of exactly the limit), 19 (the route's
    own limit, not the default), 22 (a buffer holding exactly the request), 25 (its body)."""
    taken = spy_take_complete(served)
    text = '{"a": "' + "x" * (ECHO_LIMIT - 10) + '"}'
    body = text.encode()
    assert len(body) == ECHO_LIMIT - 1
    body += b" "  # exactly /echo's limit, more than the runtime's
    with connect(served.url) as sock:
        sock.sendall(request("GET", "/hello") + b"\r\n"
                     + request("POST", "/echo", body, content_type="application/json"))
        head1, _ = read_one(sock)
        head2, answer = read_one(sock)
    assert head1.startswith(b"HTTP/1.1 200") and head2.startswith(b"HTTP/1.1 200")
    assert json.loads(answer)["event"]["a"] == "x" * (ECHO_LIMIT - 10)
    assert True in taken  # served by the worker's fast path, not handed back


def test_a_pipelined_bad_head_goes_back_to_the_io_thread_which_refuses_and_lingers(served):
    """take_complete 13 (a bad head taken as a request); _advance 20 (the lingering connection
    not watched, so the client's end is never seen)."""
    pool = served.server.connections
    with connect(served.url) as sock:
        sock.sendall(request("GET", "/hello") + b"GET /hello HTTP/1.1\r\nno colon here\r\n\r\n")
        head1, _ = read_one(sock)
        head2, _ = read_one(sock)
        assert head1.startswith(b"HTTP/1.1 200")
        assert head2.startswith(b"HTTP/1.1 400")
        sock.shutdown(socket.SHUT_WR)  # the client stops: the lingering server closes
        assert wait_until(lambda: not pool.open_connections)


def test_a_pipelined_request_over_the_limit_is_refused_by_the_io_thread(served, caplog):
    """take_complete 20 (too big taken as a request); _advance 33 (not watched after the
    refusal), 32 (the refusal's message); reject 3, 7 (its log line), 11 (Date), 12 (close)."""
    caplog.set_level(logging.INFO, logger="sfdcflex")
    pool = served.server.connections
    with connect(served.url) as sock:
        sock.sendall(request("GET", "/hello") + request("POST", "/hello", length=5000))
        head1, _ = read_one(sock)
        head2, body = read_one(sock)
        assert head1.startswith(b"HTTP/1.1 200")
        assert head2.startswith(b"HTTP/1.1 413")
        assert f"request bodies are limited to {MAX_BODY} bytes" in body.decode()
        assert b"\r\nConnection: close" in head2
        assert re.search(rb"\r\nDate: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", head2)
        assert "413 - (request rejected before routing: payload_too_large)" in caplog.messages
        sock.sendall(b"y" * 5000)  # all it announced: the server stops lingering
        assert wait_until(lambda: not pool.open_connections)
    assert no_errors_logged(caplog)


# --- the I/O thread: _advance, reject, _discard -----------------------------------------------

def test_an_empty_line_before_a_first_request_is_ignored(served):
    """_advance 3, 5, 6."""
    with connect(served.url) as sock:
        sock.sendall(b"\r\n" + request("GET", "/hello"))
        head, _ = read_one(sock)
    assert head.startswith(b"HTTP/1.1 200")


def test_a_body_of_exactly_the_limit_is_taken(served):
    """_advance 23."""
    with connect(served.url) as sock:
        sock.sendall(request("POST", "/hello", b"z" * MAX_BODY))
        head, _ = read_one(sock)
    assert head.startswith(b"HTTP/1.1 200")


def test_lingering_counts_what_came_with_the_head_and_ends_when_all_announced_came(served, caplog):
    """reject 32, 34 (what is left to drop), 45 (the linger deadline); _advance 26; _discard 3,
    4, 6, 7 (the count down and when it ends), 8 (closing it)."""
    pool = served.server.connections
    with connect(served.url) as sock:
        sock.sendall(request("POST", "/hello", b"y" * 1000, length=5000))
        head, _ = read_one(sock)
        assert head.startswith(b"HTTP/1.1 413")
        connection = only_connection(served)
        assert wait_until(lambda: connection.state == LINGERING and connection.linger_left == 4000)
        assert connection.deadline > time.monotonic() + 20  # linger_seconds is 30
        sock.sendall(b"y" * 3999)
        assert wait_until(lambda: connection.linger_left == 1
                          or id(connection) not in pool.open_connections)
        served.call("GET", "/hello")  # the I/O thread has finished that read since
        assert id(connection) in pool.open_connections  # one byte still to come
        sock.sendall(b"y")
        assert wait_until(lambda: not pool.open_connections)
    assert no_errors_logged(caplog)


def test_a_refused_request_whose_body_came_whole_is_closed_at_once(served, caplog):
    """reject 35 (nothing left, yet lingering), 37 (closing it)."""
    pool = served.server.connections
    with connect(served.url) as sock:
        sock.sendall(request("POST", "/hello", b"y" * 500))
        head, _ = read_one(sock)
        assert head.startswith(b"HTTP/1.1 413")
        assert wait_until(lambda: not pool.open_connections)
    assert no_errors_logged(caplog)


def test_a_refused_request_with_one_byte_to_come_lingers(served):
    """reject 36."""
    with connect(served.url) as sock:
        sock.sendall(request("POST", "/hello", b"y" * 499, length=500))
        head, _ = read_one(sock)
        assert head.startswith(b"HTTP/1.1 413")
        connection = only_connection(served)
        assert wait_until(lambda: connection.state == LINGERING and connection.linger_left == 1)


def test_a_bad_head_lingers_for_up_to_linger_bytes(served, caplog):
    """reject 31, 33 (no declared length: drop up to linger_bytes)."""
    with connect(served.url) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nno colon here\r\n\r\n")
        head, _ = read_one(sock)
        assert head.startswith(b"HTTP/1.1 400")
        connection = only_connection(served)
        assert wait_until(lambda: connection.state == LINGERING
                          and connection.linger_left == LINGER_BYTES)
    assert no_errors_logged(caplog)


# --- BodyBudget, directly ---------------------------------------------------------------------

def test_try_reserve_takes_what_fills_the_budget_exactly():
    """try_reserve 3."""
    budget = BodyBudget(10)
    assert budget.try_reserve(5)
    assert budget.try_reserve(5)
    assert budget.held == 10
    assert not budget.try_reserve(1)


def test_reserve_adds_what_fits_up_to_the_limit_exactly():
    """reserve 10, 12."""
    budget = BodyBudget(10)
    assert budget.reserve(3, 0.2)
    assert budget.reserve(7, 0.2)
    assert budget.held == 10


def test_reserve_gives_up_after_its_timeout_when_it_does_not_fit():
    """reserve 3, 5 (no timeout: waits for ever), 9 (held - size), 11 (True on timeout)."""
    budget = BodyBudget(10)
    assert budget.try_reserve(8)
    results = []
    waiter = threading.Thread(target=lambda: results.append(budget.reserve(5, 0.02)), daemon=True)
    started = time.monotonic()
    waiter.start()
    waiter.join(1.0)
    assert results == [False]
    assert time.monotonic() - started < 1.0
    assert budget.held == 8
