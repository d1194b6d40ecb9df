"""The server's I/O loop over real loopback sockets: accepting in batches and only while there is
room, backing off when accept() fails, bounds on connections, idle and slow clients, faults kept
to one connection, graceful close.

The I/O loop re-checks whether to listen on every sweep (at least once a second), which would hide a
missed re-check; tests that are about the immediate re-check turn the sweep off
(a sweep a minute) so that only the code under test can start or stop listening.
"""
from __future__ import annotations

import errno
import http.client
import logging
import socket
import struct
import threading
import time

import pytest

import sfdcflex.runtime.http.connection as connection_module
import sfdcflex.runtime.http.server as server_module
import sfdcflex.runtime.http.sockets as sockets_module
import sfdcflex.runtime.http.worker as worker_module
from sfdcflex.runtime.http.connection import BODY, PARKED, WAITING
from sfdcflex.runtime.http.limits import ServerLimits
from sfdcflex.runtime.http.server import FunctionsServer, start_in_thread, sweep_interval
from sfdcflex.runtime.http.sockets import listen, socket_options
from tests.support.sockets import Replies, connect, exchange, read_all, request, wait_until


HALF_A_BODY = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{"


class _AcceptFailsFirst:
    """A listening socket whose accept() raises the given errors first, then accepts for real."""

    def __init__(self, sock: socket.socket, *errors: OSError) -> None:
        self.sock, self.errors, self.calls = sock, list(errors), []

    def accept(self):
        self.calls.append(time.monotonic())
        if self.errors:
            raise self.errors.pop(0)
        return self.sock.accept()

    def __getattr__(self, name):
        return getattr(self.sock, name)


@pytest.fixture
def app(serve):
    return serve().app


@pytest.fixture
def no_sweep(monkeypatch):
    monkeypatch.setattr(server_module, "SWEEP_MAX", 60.0)
    monkeypatch.setattr(server_module, "SWEEP_MIN", 60.0)


@pytest.fixture
def idle_server(app):
    """A server whose loop is not running: the test thread calls `_accept` itself."""
    made: list[FunctionsServer] = []

    def make(*errors: OSError, max_connections: int = 1000) -> FunctionsServer:
        server = FunctionsServer(listen(("127.0.0.1", 0)), app,
                                 ServerLimits(max_connections=max_connections))
        server.socket = _AcceptFailsFirst(server.socket, *errors)
        made.append(server)
        return server

    yield make
    for server in made:
        server.server_close()


# --- accepting ------------------------------------------------------------------------------


def test_one_accept_takes_a_batch_of_64_and_leaves_the_rest_in_the_backlog(idle_server):
    server = idle_server()
    clients = [connect(server.server_address) for _ in range(66)]
    try:
        server._accept()
        assert len(server.connections.open_connections) == 64
        server._accept()
        assert len(server.connections.open_connections) == 66
        assert server._accepting  # room left, no pause: listening
        assert {c.address for c in server.connections.open_connections.values()} == \
            {c.getsockname() for c in clients}
    finally:
        for sock in clients:
            sock.close()


def test_accepted_connections_inherit_their_socket_options_from_the_listener(idle_server, monkeypatch):
    """Blocking, no Nagle, the kernel's receive and send timeouts: set once on the listening
    socket, not with three system calls per connection; set per connection where a kernel
    does not copy them."""
    prepared = []
    real = connection_module.prepare_socket
    monkeypatch.setattr(connection_module, "prepare_socket",
                        lambda sock, limits: (prepared.append(sock), real(sock, limits)))
    server = idle_server()
    clients = [connect(server.server_address) for _ in range(3)]
    try:
        server._accept()
        accepted = [c.sock for c in server.connections.open_connections.values()]
        assert len(accepted) == 3 and prepared == [] and server._inherits is True
        for sock in accepted:
            assert sock.getblocking() and sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            assert socket_options(sock) == socket_options(server.socket)
            seconds, micros = struct.unpack("@ll", sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, 16))
            assert seconds + micros / 1e6 == ServerLimits().send_timeout
        server._inherits = False  # as where the kernel copies nothing
        late = connect(server.server_address)
        clients.append(late)
        server._accept()
        assert len(prepared) == 1
    finally:
        for sock in clients:
            sock.close()


def test_a_client_that_gave_up_in_the_handshake_does_not_end_the_batch(idle_server, caplog):
    server = idle_server(OSError(errno.ECONNABORTED, "Software caused connection abort"))
    with connect(server.server_address):
        server._accept()
        assert len(server.connections.open_connections) == 1
        assert len(server.socket.calls) == 3  # aborted, accepted, then nothing more (BlockingIOError)
    assert server._accept_paused_until == 0.0
    assert not [r for r in caplog.records if r.name == "sfdcflex" and r.levelno >= logging.WARNING]


def test_at_the_limit_with_every_connection_busy_accepting_stops_at_once(idle_server):
    server = idle_server(max_connections=2)
    server._update_accepting(time.monotonic())
    assert server._accepting
    clients = [connect(server.server_address) for _ in range(2)]
    try:
        server._accept()
        for connection in server.connections.open_connections.values():
            connection.state = BODY  # reading a request: never closed for another
        clients.append(connect(server.server_address))
        server._accept()
        assert len(server.connections.open_connections) == 2
        assert not server._accepting
        assert server.socket.fileno() not in {k.fd for k in server._selector.get_map().values()}
    finally:
        for sock in clients:
            sock.close()


@pytest.mark.parametrize("code", [errno.EMFILE, errno.EINVAL], ids=["EMFILE", "EINVAL"])
def test_a_failed_accept_stops_listening_for_the_pause_at_once(idle_server, code):
    server = idle_server(OSError(code, "planted"))
    server._update_accepting(time.monotonic())
    with connect(server.server_address):
        before = time.monotonic()
        server._accept()
        after = time.monotonic()
        assert not server.connections.open_connections and len(server.socket.calls) == 1
        assert before + 0.5 <= server._accept_paused_until <= after + 0.5
        assert not server._accepting  # not listening (and so not spinning) until the pause is over
        server._update_accepting(after + 0.49)
        assert not server._accepting
        server._update_accepting(server._accept_paused_until)
        assert server._accepting


@pytest.mark.parametrize("error, level, message", ids=["EMFILE", "EINVAL"], argvalues=[
    (OSError(errno.EMFILE, "Too many open files"), logging.WARNING,
     "cannot accept a connection (Too many open files); pausing accepts for 0.1 s"),
    (OSError(errno.EINVAL, "Invalid argument"), logging.ERROR,
     "accept failed ([Errno 22] Invalid argument); pausing accepts for 0.1 s"),
])
def test_a_failed_accept_pauses_accepting_then_serves_the_client(app, monkeypatch, caplog,
                                                                  error, level, message):
    monkeypatch.setattr(server_module, "ACCEPT_PAUSE", 0.1)
    server = FunctionsServer(listen(("127.0.0.1", 0)), app, ServerLimits())
    server.socket = failing = _AcceptFailsFirst(server.socket, error)
    start_in_thread(server)
    try:
        with connect(server.server_address) as client:
            client.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert read_all(client).startswith(b"HTTP/1.1 200 ")
    finally:
        server.shutdown()
        server.server_close()
    first, second = failing.calls[:2]
    assert second - first >= 0.1  # not tried again before the pause is over
    records = [r for r in caplog.records if r.name == "sfdcflex" and r.levelno >= logging.WARNING]
    assert [(r.levelno, r.getMessage()) for r in records] == [(level, message)]


def test_emfile_on_accept_backs_off_instead_of_spinning(app, monkeypatch):
    monkeypatch.setattr(server_module, "ACCEPT_PAUSE", 0.1)
    server = FunctionsServer(listen(("127.0.0.1", 0)), app, ServerLimits())
    out_of_descriptors = [OSError(errno.EMFILE, "Too many open files")] * 1000
    server.socket = failing = _AcceptFailsFirst(server.socket, *out_of_descriptors)
    start_in_thread(server)
    try:
        client = connect(server.server_address)  # backlog: accepted by the kernel
        time.sleep(0.15)  # what is measured is how often accept() runs in this time
        client.close()
    finally:
        server.shutdown()
        server.server_close()
    assert 1 <= len(failing.calls) <= 3  # one try per 0.1 s pause, not thousands


def test_full_server_stops_listening_at_once_and_listens_again_when_one_closes(serve, no_sweep):
    served = serve(server_limits=ServerLimits(max_connections=2))
    server = served.server
    held = [connect(server.server_address) for _ in range(2)]
    late = None
    try:
        for sock in held:  # each reading a body: none of them is closed for a new client
            sock.sendall(HALF_A_BODY)
        assert wait_until(lambda: [c.state for c in server.connections.open_connections.values()]
                          == [BODY, BODY])
        late = connect(server.server_address)  # the kernel's backlog completes the handshake
        assert wait_until(lambda: not server._accepting)  # not on the next sweep: that is a minute away
        late.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        held.pop().close()  # the I/O thread reads the close and listens again, at once
        assert read_all(late).startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in held + ([late] if late else []):
            sock.close()


def test_a_close_off_the_io_thread_leaves_the_listening_to_the_io_thread(idle_server):
    server = idle_server(max_connections=1)
    with connect(server.server_address):
        server._accept()
        next(iter(server.connections.open_connections.values())).state = BODY  # none to close
        server._update_accepting(time.monotonic())
        assert not server._accepting
        connection = next(iter(server.connections.open_connections.values()))
        server.connections.close(connection)
        assert not server._accepting  # the loop is not running here: the selector is its alone
        server._loop_thread = threading.get_ident()  # as if this were the I/O thread
        try:
            server.closed(connection)
            assert server._accepting
        finally:
            server._loop_thread = None


def test_past_max_connections_with_every_one_busy_new_ones_wait_until_one_closes(serve):
    served = serve(server_limits=ServerLimits(max_connections=3))
    held = [connect(served.url) for _ in range(3)]
    for sock in held:
        sock.sendall(HALF_A_BODY)
    assert wait_until(lambda: [c.state for c in served.server.connections.open_connections.values()]
                      == [BODY] * 3)
    late = connect(served.url, timeout=0.15)  # the kernel's backlog completes the handshake
    try:
        late.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        with pytest.raises(socket.timeout):
            late.recv(100)
        held.pop().close()
        late.settimeout(5)
        assert read_all(late).startswith(b"HTTP/1.1 200 ")
    finally:
        late.close()
        for sock in held:
            sock.close()


@pytest.mark.slow  # 150 connections at once
def test_burst_of_connections_beyond_backlog_default_is_served(serve):
    assert sockets_module.BACKLOG >= 128
    runtime = serve(server_limits=ServerLimits(max_connections_per_client=0))  # one address: no cap
    socks = [connect(runtime.url) for _ in range(150)]
    try:
        for sock in socks:
            sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answers = []
        for sock in socks:
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
            answers.append(data)
    finally:
        for sock in socks:
            sock.close()
    # Every connection is accepted and answered: 200, or 429 past the 30-invocation cap.
    statuses = {a[9:12] for a in answers}
    assert statuses <= {b"200", b"429"} and b"200" in statuses


# --- idle clients; faults ---------------------------------------------------------------------


def test_idle_connections_cost_no_thread(serve):
    served = serve(server_limits=ServerLimits(threads=6, max_connections_per_client=0))
    served.call("GET", "/hello")
    before = threading.active_count()
    idle = [connect(served.url) for _ in range(200)]
    try:
        for sock in idle[:100]:
            sock.sendall(b"GET /hel")  # half a request: slow clients, not just idle ones
        assert wait_until(lambda: len(served.server.connections.open_connections) >= 200)
        assert threading.active_count() <= before  # (earlier tests' threads may still be ending)
        assert served.call("GET", "/hello").status == 200
    finally:
        for sock in idle:
            sock.close()


def test_an_idle_server_loop_sleeps_instead_of_ticking(serve):
    """With the default timeouts the loop wakes about once a second, not ten times: an agent's
    panel sends a request every few seconds, and each idle wake-up is CPU charged to those."""
    served = serve()
    time.sleep(0.05)  # past the loop's first turn, which sweeps at once
    selector, turns = served.server._selector, []
    real = selector.select

    def counted(timeout=None):
        turns.append(timeout)
        return real(timeout)

    selector.select = counted
    try:
        time.sleep(0.3)
    finally:
        selector.select = real
    assert len(turns) <= 1, f"{len(turns)} turns of an idle loop in 0.3 s"
    assert sweep_interval(ServerLimits()) == 1.0
    assert sweep_interval(ServerLimits(read_timeout=0.2)) == pytest.approx(0.05)  # a quarter


def test_a_kept_alive_connection_is_answered_by_the_worker_woken_for_it(serve):
    """Its next request, seconds later (an agent's panel), is read and answered by a worker
    waiting in the workers' epoll: the I/O thread is neither woken nor reads it."""
    served = serve()
    assert served.server.workers.can_park  # Linux
    wakes, reads = [], []
    real_wake = served.server.wake
    served.server.wake = lambda: (wakes.append(1), real_wake())   # the I/O thread's wake-ups, counted
    real = served.server.connections.readable
    served.server.connections.readable = lambda connection: (reads.append(1), real(connection))
    with connect(served.url) as sock:
        for _ in range(3):   # each after the worker parked the connection
            sock.sendall(request("GET", "/hello"))
            assert Replies(sock).next()[0].startswith(b"HTTP/1.1 200 ")
            assert wait_until(lambda: all(c.state == PARKED for c in
                                          served.server.connections.open_connections.values()))
            assert len(served.server._selector.get_map()) <= 2  # the listener, the wake-up pipe
        assert len(reads) == 1  # the first request only, on the I/O thread
        assert wakes == [] and not served.server._returned  # (closing it will wake it)


def test_without_parking_a_kept_alive_connection_goes_back_to_the_selector_without_waking_the_io_thread(
        serve, monkeypatch):
    monkeypatch.setattr(worker_module, "PARKING", False)  # as on macOS or the BSDs
    served = serve()
    assert not served.server.workers.can_park
    wakes = []
    real_wake = served.server.wake
    served.server.wake = lambda: (wakes.append(1), real_wake())   # the I/O thread's wake-ups, counted
    with connect(served.url) as sock:
        for _ in range(2):   # the second request arrives after the worker gave the connection back
            sock.sendall(request("GET", "/hello"))
            assert Replies(sock).next()[0].startswith(b"HTTP/1.1 200 ")
            assert wait_until(lambda: all(c.state == WAITING for c in
                                          served.server.connections.open_connections.values()))
    assert wakes == [] and not served.server._returned


def test_a_fault_with_one_connection_does_not_stop_the_server(serve, monkeypatch, caplog):
    served = serve()
    pool = served.server.connections
    real = pool._advance

    def fails_once(connection):
        monkeypatch.setattr(pool, "_advance", real)
        raise RuntimeError("planted")

    monkeypatch.setattr(pool, "_advance", fails_once)
    assert exchange(served.url, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n") == b""  # that one is closed
    assert served.call("GET", "/hello").status == 200
    assert "planted" in caplog.text


# --- stopping --------------------------------------------------------------------------------


def test_a_loop_that_fails_as_it_starts_still_lets_shutdown_return(app, monkeypatch):
    """Whatever fails in the loop, even before its first select, ends in the stopped state, so
    that shutdown() (a test's teardown, a signal handler's stop) cannot wait for ever."""
    server = FunctionsServer(listen(("127.0.0.1", 0)), app, ServerLimits())

    def fails(now):
        raise RuntimeError("planted")

    monkeypatch.setattr(server, "_update_accepting", fails)
    with pytest.raises(RuntimeError, match="planted"):
        server.serve_forever()
    stopping = threading.Thread(target=server.shutdown, daemon=True)
    stopping.start()
    stopping.join(5)
    assert not stopping.is_alive()
    monkeypatch.undo()
    server.server_close()


def slow_calls(served, count: int, seconds: float) -> list[int]:
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda: statuses.append(
        served.call("POST", "/slow", body={"wait": seconds}).status)) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return statuses


def test_every_worker_ends_with_the_server(serve):
    served = serve(server_limits=ServerLimits(threads=4))
    assert slow_calls(served, 4, 0.1) == [200] * 4
    workers = served.server.workers
    assert workers.count == 4   # the server's thread count is the limits' own
    threads = list(workers._threads)
    assert len(threads) == 4 and all(thread.is_alive() for thread in threads)
    served.server.shutdown()
    served.server.server_close()
    assert wait_until(lambda: not any(thread.is_alive() for thread in threads), 3)
    workers.submit(lambda: None)   # a late hand-over after the stop starts nothing
    assert workers.started == 4


def _start_slow_call(served, wait: float) -> tuple[threading.Thread, list]:
    answers: list = []

    def post() -> None:
        conn = http.client.HTTPConnection(served.url.split("//")[1], timeout=10)
        try:
            conn.request("POST", "/slow", body=f'{{"wait": {wait}}}', headers={"Content-Type": "application/json"})
            reply = conn.getresponse()
            answers.append((reply.status, reply.getheader("Connection"), reply.read()))
        except (http.client.HTTPException, OSError) as exc:
            answers.append(exc)
        finally:
            conn.close()

    thread = threading.Thread(target=post)
    thread.start()
    return thread, answers


def _in_thread(function, *args) -> tuple[threading.Thread, list]:
    result: list = []
    thread = threading.Thread(target=lambda: result.append(function(*args)))
    thread.start()
    return thread, result


def test_close_gracefully_finishes_requests_in_flight_and_closes_idle_connections(serve):
    served = serve()
    slow = served.app.functions["slow"].module
    slow.RELEASE.clear()
    idle = http.client.HTTPConnection(served.url.split("//")[1], timeout=5)
    idle.request("GET", "/hello")
    assert idle.getresponse().read() == b'{"ok":true}'
    in_flight, answers = _start_slow_call(served, wait=5)
    assert slow.ENTERED.acquire(timeout=5)
    closing, result = _in_thread(served.server.close_gracefully, 5.0)
    try:
        assert idle.sock.recv(1) == b""   # the idle keep-alive connection was closed at once
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # new connections are refused, not queued
            try:
                connect(served.url, timeout=1).close()
            except ConnectionRefusedError:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the server still accepts connections while draining")
        assert closing.is_alive() and not answers   # still waiting for the function
    finally:
        slow.RELEASE.set()
        in_flight.join(10)
        closing.join(10)
    assert answers[0][:2] == (200, "close") and answers[0][2] == b'{"released":true}'
    assert result == [True]


def test_close_gracefully_cuts_what_outlives_the_timeout(serve):
    served = serve()
    slow = served.app.functions["slow"].module
    slow.RELEASE.clear()
    in_flight, answers = _start_slow_call(served, wait=5)
    try:
        assert slow.ENTERED.acquire(timeout=5)
        started = time.monotonic()
        assert served.server.close_gracefully(0.15) is False
        assert time.monotonic() - started < 3
        in_flight.join(5)
        assert isinstance(answers[0], (http.client.HTTPException, OSError))
    finally:
        slow.RELEASE.set()
        in_flight.join(10)
