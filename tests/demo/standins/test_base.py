"""The stand-ins' shared server (standins/base.py) over real sockets, with a minimal stand-in:
lifecycle, fail_next's argument checks, the default fault body, request bodies it will not read
(400 / 413 and the connection closed), and dropping connections whose peer already reset."""
from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from sfdcflex.demo.standins.base import MAX_BODY_BYTES, POLL_SECONDS, Request, Response, StandIn, json_response


class Echo(StandIn):
    """One endpoint, "echo", that answers what it read; `gate` can hold a request in the handler."""

    server_name = "echo-stand-in"

    def __init__(self) -> None:
        super().__init__()
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def route(self, request: Request):
        if request.path == "/echo":
            return "echo", self._echo
        return None, lambda request: Response(404, b"", "text/plain")

    def _echo(self, request: Request) -> Response:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(5)
        return json_response(200, {"method": request.method, "json": request.json(),
                                   "size": len(request.body)})


@pytest.fixture(scope="module")
def echo():
    with Echo() as server:
        yield server


def exchange(server: StandIn, raw: bytes) -> bytes:
    """Send raw bytes on a fresh connection and read until the server closes it."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(raw)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
        return received


def request_bytes(body: bytes, length: str | None = None, *, close: bool = True) -> bytes:
    head = [b"POST /echo HTTP/1.1", b"Host: 127.0.0.1",
            b"Content-Length: " + (str(len(body)) if length is None else length).encode("latin-1")]
    if close:
        head.append(b"Connection: close")
    return b"\r\n".join(head) + b"\r\n\r\n" + body


# -- lifecycle ----------------------------------------------------------------------------------

def test_the_base_class_has_no_routes_and_no_url_until_started():
    bare = StandIn()
    with pytest.raises(NotImplementedError):
        bare.route(Request("GET", "/", {}, {}, b""))
    with pytest.raises(RuntimeError, match="StandIn is not started"):
        bare.url
    bare.stop()   # stopping what never started is harmless


def test_start_twice_keeps_one_server_and_stop_twice_is_harmless():
    server = Echo()
    assert server.start() is server
    url = server.url
    assert server.start() is server and server.url == url
    server.stop()
    server.stop()
    with pytest.raises(RuntimeError):
        server.url


def test_stop_wakes_the_serving_loop_instead_of_waiting_out_its_poll_interval():
    """A suite stops about a thousand stand-ins; each waiting out even 20 ms cost it ten seconds.
    The bound is half the 0.5 s interval: a stop that only polls takes 0.25 s on average."""
    assert POLL_SECONDS >= 0.5
    took = []
    for _ in range(5):
        server = Echo().start()
        assert b'"size":2' in exchange(server, request_bytes(b"{}"))
        started = time.monotonic()
        server.stop()
        took.append(time.monotonic() - started)
        assert not server._thread.is_alive()
    assert sorted(took)[2] < POLL_SECONDS / 2, took


# -- fault injection ----------------------------------------------------------------------------

def test_fail_next_needs_something_to_do_and_a_known_drop(echo):
    with pytest.raises(ValueError, match="needs status, stall, hold, reset, drop or trickle"):
        echo.fail_next("echo")
    with pytest.raises(ValueError, match='drop must be "after" or "truncate"'):
        echo.fail_next("echo", drop="later")
    assert b'"size":2' in exchange(echo, request_bytes(b"{}"))   # nothing was queued


def test_a_held_call_is_answered_only_once_the_test_lets_it_go(echo):
    release = threading.Event()
    echo.fail_next("echo", hold=release)
    host, port = echo.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request_bytes(b"{}"))
        sock.settimeout(0.1)
        with pytest.raises(socket.timeout):   # held: nothing comes back yet
            sock.recv(1)
        release.set()
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")


def test_an_injected_status_without_body_gets_the_default_error_body(echo):
    echo.fail_next("echo", status=503)
    answer = exchange(echo, request_bytes(b"{}"))
    assert answer.startswith(b"HTTP/1.1 503 ")
    assert answer.endswith(b'\r\n\r\n{"status":503}')


# -- request bodies -----------------------------------------------------------------------------

def test_a_body_that_is_not_json_reads_as_none(echo):
    answer = exchange(echo, request_bytes(b"{not json"))
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b'{"method":"POST","json":null,"size":9}')


@pytest.mark.parametrize("length, status", [
    (str(MAX_BODY_BYTES + 1), b"413"),   # too large to read
    ("ten", b"400"),                     # not a number
    ("-1", b"400"),
    ("\xb2", b"400"),                    # "²": a digit to str.isdigit, not to int()
])
def test_a_body_length_the_server_will_not_read_is_refused_and_the_connection_closed(echo, length, status):
    before = echo.calls["echo"]
    # Keep-alive was asked for, yet the server must close: the unread body would be read as
    # the next request.
    answer = exchange(echo, request_bytes(b"", length, close=False))
    head = answer.split(b"\r\n\r\n")[0].split(b"\r\n")
    assert head[0].startswith(b"HTTP/1.1 " + status + b" ")
    assert b"Connection: close" in head
    assert echo.calls["echo"] == before


# -- dropping connections ---------------------------------------------------------------------

def test_drop_connections_skips_a_connection_whose_peer_already_reset():
    with Echo() as server:
        server.gate = threading.Event()
        host, port = server.url.removeprefix("http://").split(":")
        client = socket.create_connection((host, int(port)), timeout=5)
        client.sendall(request_bytes(b"{}", close=False))
        assert server.entered.wait(5)
        # The client resets the connection while the handler still holds it.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        server.drop_connections()
        server.gate.set()
        server.gate = None
        # The server goes on serving.
        assert b'"size":2' in exchange(server, request_bytes(b"{}"))
