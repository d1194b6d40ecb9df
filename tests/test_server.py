"""The HTTP server over raw sockets: keep-alive, one write per response, limits, slow clients."""
from __future__ import annotations

import http.client
import logging
import socket
import threading
import time

import pytest

from sfdcflex.runtime.server import MAX_HEADER_BYTES, ConnectionHandler, FunctionsServer


def raw_exchange(url: str, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read until the server closes or goes quiet; returns what came back."""
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (socket.timeout, ConnectionResetError):
            pass
        return b"".join(chunks)


def test_keep_alive_serves_many_requests_on_one_connection(runtime):
    conn = http.client.HTTPConnection(runtime.url.split("//")[1], timeout=5)
    conn.connect()
    first_socket = conn.sock
    for _ in range(20):
        conn.request("GET", "/hello")
        reply = conn.getresponse()
        assert reply.status == 200 and reply.read() == b'{"ok":true}'
        assert reply.getheader("Connection") is None
    assert conn.sock is first_socket
    conn.close()


def test_http_1_0_closes_unless_asked_to_keep_alive(runtime):
    answer = raw_exchange(runtime.url, b"GET /hello HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close" in answer
    assert answer.endswith(b'{"ok":true}')


def test_log_line_per_request(runtime, caplog):
    with caplog.at_level(logging.INFO, logger="sfdcflex"):
        runtime.call("GET", "/hello?code=should-not-be-logged")
    lines = [r.getMessage() for r in caplog.records if "/hello" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("200 GET /hello ") and lines[0].endswith("ms")
    assert "should-not-be-logged" not in caplog.text


class _CountingSocket:
    """The server side of a socketpair that counts sendall calls."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock, self.writes = sock, 0

    def sendall(self, data: bytes) -> None:
        self.writes += 1
        self._sock.sendall(data)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def test_each_response_leaves_in_one_write(runtime):
    server_side, client_side = socket.socketpair()
    counting = _CountingSocket(server_side)
    worker = threading.Thread(target=ConnectionHandler, args=(counting, ("127.0.0.1", 1), runtime.server))
    worker.start()
    client_side.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" * 3 + b"GET /built HTTP/1.1\r\nConnection: close\r\n\r\n")
    worker.join(5)
    server_side.close()  # socketserver closes it after the handler; here the test does
    client_side.settimeout(5)
    received = b""
    while chunk := client_side.recv(65536):
        received += chunk
    client_side.close()
    assert received.count(b"HTTP/1.1 ") == 4
    assert counting.writes == 4


@pytest.mark.parametrize("request_bytes,status", [
    (b"GET /hello HTTP/1.1\r\nX-Big: " + b"a" * (MAX_HEADER_BYTES + 1) + b"\r\n\r\n", 431),
    (b"GET /hello HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n", 431),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /hello HTTP/2.0\r\n\r\n", 505),
    (b"GET hello HTTP/1.1\r\n\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nContent-Length: nope\r\n\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411),
    (b"GET /hello HTTP/1.1\r\n folded: header\r\n\r\n", 400),
])
def test_malformed_requests_get_an_honest_status_and_json(runtime, request_bytes, status):
    answer = raw_exchange(runtime.url, request_bytes)
    assert answer.startswith(b"HTTP/1.1 %d " % status), answer[:80]
    assert b"Content-Type: application/json" in answer and b'"error"' in answer
    assert b"Connection: close" in answer


def test_body_over_6_mib_is_413_without_being_read(runtime):
    head = b"POST /echo HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (6 * 1024 * 1024 + 1)
    answer = raw_exchange(runtime.url, head)  # the body is never sent: the server must not wait for it
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"payload_too_large" in answer


def test_expect_100_continue(runtime):
    answer = raw_exchange(runtime.url, b"POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"
                                       b"Content-Type: application/json\r\nConnection: close\r\n\r\n{}")
    assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")


def test_slow_client_is_closed_by_the_read_timeout_while_others_are_served(serve):
    served = serve(read_timeout=0.6)
    host, port = served.url.split("//")[1].split(":")
    slow = socket.create_connection((host, int(port)), timeout=5)
    closed_after = None
    started = time.monotonic()
    try:
        for byte in b"GET /hello HTTP/1.1\r\nHost: x\r\n":  # one byte every 50 ms: never a whole request
            assert served.call("GET", "/hello", timeout=2).status == 200
            try:
                slow.sendall(bytes([byte]))
                slow.settimeout(0.05)
                if slow.recv(1) == b"":
                    closed_after = time.monotonic() - started
                    break
            except socket.timeout:
                continue
            except OSError:
                closed_after = time.monotonic() - started
                break
            if time.monotonic() - started > 4:
                break
    finally:
        slow.close()
    assert closed_after is not None and closed_after < 2.5


def test_client_disconnects_print_no_traceback(runtime, caplog, capsys):
    for partial in (b"GET /hel", b"POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"a\"",
                    b"GET /hello HTTP/1.1\r\nHost: x\r\n"):
        host, port = runtime.url.split("//")[1].split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(partial)
    # a client that leaves before reading the answer
    host, port = runtime.url.split("//")[1].split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.sendall(b"GET /hello HTTP/1.1\r\n\r\n")
    assert runtime.call("GET", "/hello").status == 200
    # Wait (bounded) until every connection thread has seen its socket close and ended.
    deadline = time.monotonic() + 10
    while any("process_request_thread" in t.name for t in threading.enumerate()):
        assert time.monotonic() < deadline, "a connection thread outlived its closed socket"
        time.sleep(0.01)
    assert "Traceback" not in caplog.text and "Traceback" not in capsys.readouterr().err


@pytest.mark.slow  # 150 connections at once
def test_burst_of_connections_beyond_backlog_default_is_served(runtime):
    assert FunctionsServer.request_queue_size >= 128
    host, port = runtime.url.split("//")[1].split(":")
    socks = [socket.create_connection((host, int(port)), timeout=5) for _ in range(150)]
    try:
        for sock in socks:
            sock.sendall(b"GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n")
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



def test_date_header_is_an_imf_fixdate(runtime):
    import email.utils
    answer = runtime.call("GET", "/hello")
    parsed = email.utils.parsedate_to_datetime(answer.headers["Date"])
    assert answer.headers["Date"].endswith(" GMT") and abs(parsed.timestamp() - time.time()) < 5
