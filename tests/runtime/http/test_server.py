"""The HTTP server over raw sockets: keep-alive, one write per response, limits, slow clients."""
from __future__ import annotations

import http.client
import logging
import socket
import threading
import time

import pytest

from sfdcflex.runtime.http.http11 import MAX_HEADER_BYTES
import sfdcflex.runtime.http.server as server_module
from sfdcflex.runtime.http.limits import ServerLimits


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


def test_each_response_leaves_in_one_write(runtime, monkeypatch):
    # Headers and body in one send: two writes meet Nagle's algorithm and delayed ACK.
    writes = []
    real_send = socket.socket.send

    def counting_send(sock, data, *args):
        writes.append(bytes(data[:9]))
        return real_send(sock, data, *args)

    monkeypatch.setattr(socket.socket, "send", counting_send)
    answer = raw_exchange(runtime.url, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" * 3
                          + b"GET /built HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert answer.count(b"HTTP/1.1 ") == 4
    assert [w for w in writes if w != b"x"] == [b"HTTP/1.1 "] * 4  # b"x": the I/O thread's wake-up


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
    # The client waits for 100 Continue before sending its body (RFC 9110 §10.1.1).
    host, port = runtime.url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"
                     b"Content-Type: application/json\r\nConnection: close\r\n\r\n")
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"{}")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 OK")


def test_slow_client_is_closed_by_the_read_timeout_while_others_are_served(serve):
    served = serve(server_limits=ServerLimits(read_timeout=0.6))
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
    assert server_module.BACKLOG >= 128
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
        host, port = served.url.split("//")[1].split(":")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # new connections are refused, not queued
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
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
        assert served.server.close_gracefully(0.3) is False
        assert time.monotonic() - started < 3
        in_flight.join(5)
        assert isinstance(answers[0], (http.client.HTTPException, OSError))
    finally:
        slow.RELEASE.set()
        in_flight.join(10)
