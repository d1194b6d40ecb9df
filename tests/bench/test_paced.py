"""The paced client: spaced requests on kept-alive connections, back to back, or a connection
per request, each measured only once its warm-up pass is in (against an in-process bare server)."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from sfdcflex.bench import paced
from sfdcflex.bench.paced import Pace, response_complete, run_paced
from sfdcflex.bench.servers import BareHandler, BareServer

HELLO = ("GET", "/hello", b"", {})


class _Recording(BareHandler):
    def do_GET(self) -> None:
        self.server.seen.append((self.client_address, time.perf_counter()))
        super().do_GET()


@pytest.fixture
def bare():
    server = BareServer(("127.0.0.1", 0), _Recording)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01},
                              daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def _window(server, marks):
    return lambda starting: marks.append((starting, len(server.seen), time.perf_counter()))


def test_spaced_connections_keep_their_connection_and_send_an_interval_apart(bare):
    server, url = bare
    marks = []
    result = run_paced(url, HELLO, Pace(connections=4, interval=0.1, passes=2), _window(server, marks))
    assert (result.ok, result.errors) == (8, 0) and 0 < result.p50_ms <= result.p99_ms
    # opened once pass 0's four requests were in, closed after the last of the twelve
    assert [(starting, seen) for starting, seen, _ in marks] == [(True, 4), (False, 12)]
    by_connection = {}
    for address, at in server.seen:
        by_connection.setdefault(address, []).append(at)
    assert len(by_connection) == 4   # kept alive: one connection each, three requests on it
    for times in by_connection.values():
        # 20 ms of slack: a loaded machine delays one arrival more than the next
        assert len(times) == 3 and all(b - a >= 0.08 for a, b in zip(times, times[1:]))


def test_back_to_back_holds_every_connection_until_all_warm_ups_are_in(bare):
    server, url = bare
    marks = []
    result = run_paced(url, HELLO, Pace(connections=4, interval=0.0, passes=5), _window(server, marks))
    assert (result.ok, result.errors) == (20, 0)
    # no measured request reached the server before the window opened
    assert [(starting, seen) for starting, seen, _ in marks] == [(True, 4), (False, 24)]
    assert len({address for address, _ in server.seen}) == 4


def test_a_new_connection_per_request_connects_for_each_one(bare):
    server, url = bare
    result = run_paced(url, HELLO, Pace(connections=2, interval=0.0, passes=3, new_connection=True))
    assert (result.ok, result.errors) == (6, 0)
    assert len({address for address, _ in server.seen}) == 8   # 2 warm-ups + 6, each its own port


def test_a_refused_port_counts_errors_and_ends(bare):
    server, url = bare
    server.shutdown()
    server.server_close()
    result = run_paced(url, HELLO, Pace(connections=2, interval=0.0, passes=2))
    assert result.ok == 0 and result.errors > 0


def test_a_request_left_unanswered_is_an_error_after_the_request_timeout(monkeypatch):
    monkeypatch.setattr(paced, "REQUEST_TIMEOUT", 0.05)
    silent = socket.create_server(("127.0.0.1", 0))   # the kernel accepts; nothing ever answers
    try:
        began = time.perf_counter()
        result = run_paced(f"http://127.0.0.1:{silent.getsockname()[1]}", HELLO,
                           Pace(connections=2, interval=0.0, passes=3))
        # each of passes 1 to 3 times out on both connections (pass 0 is the warm-up's)
        assert (result.ok, result.errors) == (0, 6)
        assert time.perf_counter() - began < 2.0
    finally:
        silent.close()


def test_a_response_is_complete_at_its_content_length_or_at_the_close():
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n"
    assert response_complete(head + b'{"ok":', False) is None
    assert response_complete(head + b'{"ok":true}', False) == 200
    assert response_complete(b"HTTP/1.1 503 Busy\r\n\r\n", True) == 503
    assert response_complete(b"HTTP/1.1 200 OK\r\n", True) is None   # no header end: not a response
