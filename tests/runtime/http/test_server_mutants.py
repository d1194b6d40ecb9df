"""Mutation tests for the server's connection limits (issue 18): `FunctionsServer._accept`,
`_update_accepting` and `connection_closed`, over real loopback sockets.

The I/O loop re-checks whether to listen on every sweep (every 0.1 s), which would hide a
missed re-check; tests that are about the immediate re-check turn the sweep off
(SWEEP_INTERVAL of a minute) so that only the code under test can start or stop listening.
"""
from __future__ import annotations

import errno
import logging
import socket
import threading
import time

import pytest

import sfdcflex.runtime.http.server as server_module
from sfdcflex.runtime.http.server import FunctionsServer, listen, start_in_thread
from sfdcflex.runtime.http.limits import ServerLimits


def connect(address, timeout: float = 2.0) -> socket.socket:
    return socket.create_connection(address[:2], timeout=timeout)


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def wait_until(condition, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


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
    monkeypatch.setattr(server_module, "SWEEP_INTERVAL", 60.0)


@pytest.fixture
def idle_server(app):
    """A server whose loop is not running: the test thread calls `_accept` itself."""
    made: list[FunctionsServer] = []

    def make(*errors: OSError, max_connections: int = 1000) -> FunctionsServer:
        server = FunctionsServer(listen(("127.0.0.1", 0)), app, ServerLimits(max_connections=max_connections))
        server.socket = _AcceptFailsFirst(server.socket, *errors)
        made.append(server)
        return server

    yield make
    for server in made:
        server.server_close()


# --- _accept, called directly ------------------------------------------------------------------

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


def test_a_client_that_gave_up_in_the_handshake_does_not_end_the_batch(idle_server, caplog):
    server = idle_server(OSError(errno.ECONNABORTED, "Software caused connection abort"))
    with connect(server.server_address):
        server._accept()
        assert len(server.connections.open_connections) == 1
        assert len(server.socket.calls) == 3  # aborted, accepted, then nothing more (BlockingIOError)
    assert server._accept_paused_until == 0.0
    assert not [r for r in caplog.records if r.name == "sfdcflex" and r.levelno >= logging.WARNING]


def test_at_the_limit_accepting_stops_at_once(idle_server):
    server = idle_server(max_connections=2)
    server._update_accepting(time.monotonic())
    assert server._accepting
    clients = [connect(server.server_address) for _ in range(3)]
    try:
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


# --- _accept and connection_closed, in the running loop ----------------------------------------

@pytest.mark.parametrize("error, level, message", ids=["EMFILE", "EINVAL"], argvalues=[
    (OSError(errno.EMFILE, "Too many open files"), logging.WARNING,
     "cannot accept a connection (Too many open files); pausing accepts for 0.2 s"),
    (OSError(errno.EINVAL, "Invalid argument"), logging.ERROR,
     "accept failed ([Errno 22] Invalid argument); pausing accepts for 0.2 s"),
])
def test_a_failed_accept_pauses_accepting_then_serves_the_client(app, monkeypatch, caplog,
                                                                  error, level, message):
    monkeypatch.setattr(server_module, "ACCEPT_PAUSE", 0.2)
    server = FunctionsServer(listen(("127.0.0.1", 0)), app, ServerLimits())
    server.socket = failing = _AcceptFailsFirst(server.socket, error)
    start_in_thread(server)
    try:
        with connect(server.server_address) as client:
            client.sendall(b"GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n")
            assert read_all(client).startswith(b"HTTP/1.1 200 ")
    finally:
        server.shutdown()
        server.server_close()
    first, second = failing.calls[:2]
    assert second - first >= 0.2  # not tried again before the pause is over
    records = [r for r in caplog.records if r.name == "sfdcflex" and r.levelno >= logging.WARNING]
    assert [(r.levelno, r.getMessage()) for r in records] == [(level, message)]


def test_full_server_stops_listening_at_once_and_listens_again_when_one_closes(serve, no_sweep):
    served = serve(server_limits=ServerLimits(max_connections=2))
    server = served.server
    held = [connect(server.server_address) for _ in range(2)]
    late = None
    try:
        assert wait_until(lambda: len(server.connections.open_connections) == 2)
        assert wait_until(lambda: not server._accepting)  # not on the next sweep: that is a minute away
        late = connect(server.server_address)  # the kernel's backlog completes the handshake
        late.sendall(b"GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n")
        held.pop().close()  # the I/O thread reads the close and listens again, at once
        assert read_all(late).startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in held + ([late] if late else []):
            sock.close()


def test_a_close_off_the_io_thread_leaves_the_listening_to_the_io_thread(idle_server):
    server = idle_server(max_connections=1)
    with connect(server.server_address):
        server._accept()
        assert not server._accepting
        server.connections.close(next(iter(server.connections.open_connections.values())))
        assert not server._accepting  # the loop is not running here: the selector is its alone
        server._loop_thread = threading.get_ident()  # as if this were the I/O thread
        try:
            server.closed(None)
            assert server._accepting
        finally:
            server._loop_thread = None
