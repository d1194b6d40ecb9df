"""The server end to end over loopback, as a client sees it: keep-alive, one write per reply,
honest answers to malformed or oversized requests, Expect: 100-continue, clients that leave,
idle, send too slowly or do not read."""
from __future__ import annotations

import email.utils
import http.client
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from sfdcflex.runtime.http.http11 import MAX_HEADER_BYTES
from sfdcflex.runtime.http.limits import ServerLimits
from sfdcflex.runtime.response import Reply
from tests.support.sockets import connect, exchange, read_all, wait_until


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
    answer = exchange(runtime.url, b"GET /hello HTTP/1.0\r\n\r\n")
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
    answer = exchange(runtime.url, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" * 3
                          + b"GET /built HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.count(b"HTTP/1.1 ") == 4
    assert [w for w in writes if w != b"x"] == [b"HTTP/1.1 "] * 4  # b"x": the I/O thread's wake-up


def test_date_header_is_an_imf_fixdate(runtime):
    answer = runtime.call("GET", "/hello")
    parsed = email.utils.parsedate_to_datetime(answer.headers["Date"])
    assert answer.headers["Date"].endswith(" GMT") and abs(parsed.timestamp() - time.time()) < 5


@pytest.mark.parametrize("request_bytes,status", [
    (b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEADER_BYTES + 1) + b"\r\n\r\n", 431),
    (b"GET /hello HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n", 431),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /hello HTTP/2.0\r\n\r\n", 505),
    (b"GET hello HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411),
    (b"GET /hello HTTP/1.1\r\nHost: x\r\n folded: header\r\n\r\n", 400),
])
def test_malformed_requests_get_an_honest_status_and_json(runtime, request_bytes, status):
    answer = exchange(runtime.url, request_bytes)
    assert answer.startswith(b"HTTP/1.1 %d " % status), answer[:80]
    assert b"Content-Type: application/json" in answer and b'"error"' in answer
    assert b"Connection: close" in answer


@pytest.mark.parametrize("request_bytes", [
    b"GET /hello HTTP/1.1\r\nHost: x\r\nX-A: one\rtwo\r\n\r\n",                   # bare CR in a value
    b"GET /hello HTTP/1.1\r\nHost: x\r\nX-A: on\x00e\r\n\r\n",                    # NUL
    b"GET /hello HTTP/1.1\nHost: x\n\n",                                          # bare LF line ends
    b"GET /hello HTTP/1.1\r\nHost: x\n\r\n",                                      # one bare LF
    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \u00b2\r\n\r\n".encode(),  # a non-ASCII digit
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"1" * 19 + b"\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\n{}",
    b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n",
])
def test_lax_heads_are_400_json_and_closed(runtime, request_bytes):
    answer = exchange(runtime.url, request_bytes)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:80]
    assert b"Connection: close" in answer
    error = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert set(error) == {"error", "message"}


def test_a_request_without_one_host_is_400_first_or_kept_alive_and_http_1_0_needs_none(runtime):
    """RFC 9112 §3.2, on a new connection and on a kept-alive one (where a worker reads the next
    request and leaves a bad one to the I/O thread)."""
    for second in (b"GET /hello HTTP/1.1\r\n\r\n", b"GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"):
        with connect(runtime.url) as sock:
            sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
            sock.sendall(second)
            answer = read_all(sock)
        assert answer.startswith(b"HTTP/1.1 400 ") and b'"error":"bad_host"' in answer
        assert b"Connection: close" in answer
        assert exchange(runtime.url, second).startswith(b"HTTP/1.1 400 ")
    assert exchange(runtime.url, b"GET /hello HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200 ")


def test_body_over_6_mib_is_413_without_being_read(runtime):
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (6 * 1024 * 1024 + 1)
    answer = exchange(runtime.url, head)  # the body is never sent: the server must not wait for it
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"payload_too_large" in answer


@pytest.mark.parametrize("method, path", [("POST", "/nope"), ("POST", "/healthz"), ("DELETE", "/hello"),
                                          ("POST", "http://x/nope?a=1")])
def test_a_body_nothing_would_read_is_refused_from_the_head(serve, method, path):
    """A path no function, asset or built-in answers for this method (the built-in /healthz
    takes GET only), or a method none takes: 404 or 405 from the head, before the client sent
    a byte of its 6 MiB body, and the connection lingers and closes as after a 413."""
    served = serve(builtins={"/healthz": lambda request: Reply(200, [], b"ok")})
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {6 * 1024 * 1024}\r\n\r\n"
    with connect(served.url, timeout=2) as sock:
        sock.sendall(head.encode())  # the body is never sent: the answer must not wait for it
        answer = read_all(sock)
    status = 405 if method == "DELETE" else 404
    assert answer.startswith(b"HTTP/1.1 %d " % status) and b"Connection: close" in answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] in ("not_found", "method_not_allowed")
    assert served.call("GET", "/healthz").status == 200  # GET of the built-in is still its own


def test_a_head_request_with_a_body_to_no_route_gets_the_404_head_only(runtime):
    answer = exchange(runtime.url, b"HEAD /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 404 ") and answer.endswith(b"\r\n\r\n")


def test_client_sending_its_whole_body_first_reads_the_413(serve):
    served = serve(body_limits={"/echo": 1024})
    body = b"{" + b" " * (3 * 1024 * 1024) + b"}"  # far more than the socket buffers hold
    request = urllib.request.Request(served.url + "/echo", data=body,
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 413
    assert json.loads(refused.value.read())["error"] == "payload_too_large"
    assert served.call("POST", "/echo", body={"a": 1}).status == 200  # other routes' limit: 6 MiB


def test_body_over_the_runtime_limit_sent_in_one_go_still_reads_413(runtime):
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (7 * 1024 * 1024)
    with connect(runtime.url, timeout=10) as sock:
        sock.sendall(head + b"x" * (7 * 1024 * 1024))
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"payload_too_large" in answer


def test_expect_100_continue(runtime):
    # The client waits for 100 Continue before sending its body (RFC 9110 §10.1.1).
    with connect(runtime.url) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"
                     b"Content-Type: application/json\r\nConnection: close\r\n\r\n")
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"{}")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 OK")


def test_client_disconnects_print_no_traceback(runtime, caplog, capsys):
    for partial in (b"GET /hel", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\"",
                    b"GET /hello HTTP/1.1\r\nHost: x\r\n"):
        with connect(runtime.url) as sock:
            sock.sendall(partial)
    # a client that leaves before reading the answer
    with connect(runtime.url) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert runtime.call("GET", "/hello").status == 200
    # Wait (bounded) until every connection thread has seen its socket close and ended.
    deadline = time.monotonic() + 10
    while any("process_request_thread" in t.name for t in threading.enumerate()):
        assert time.monotonic() < deadline, "a connection thread outlived its closed socket"
        time.sleep(0.01)
    assert "Traceback" not in caplog.text and "Traceback" not in capsys.readouterr().err


# --- idle, slow and absent clients ------------------------------------------------------------

def test_idle_keep_alive_connection_is_closed_after_the_idle_time(serve):
    served = serve(server_limits=ServerLimits(keepalive_timeout=0.15))
    with connect(served.url) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(1000).startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        assert sock.recv(100) == b""
        assert 0.1 <= time.monotonic() - started < 2.0



def test_slow_client_is_closed_by_the_read_timeout_while_others_are_served(serve):
    served = serve(server_limits=ServerLimits(read_timeout=0.3))
    slow = connect(served.url)
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



def test_a_client_that_does_not_read_its_answer_is_dropped_and_others_are_served(serve):
    served = serve(server_limits=ServerLimits(send_timeout=0.15))
    body = json.dumps({"pad": "z" * 6_000_000}).encode()   # echoed back: more than the send buffer
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(served.server.server_address)
    try:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
        assert served.call("GET", "/hello").status == 200   # meanwhile others are served
        # Not read until the worker's send gave up (after 0.15 s) and the connection closed.
        assert wait_until(lambda: not served.server.connections.open_connections)
        received = read_all(sock)
    finally:
        sock.close()
    assert received.startswith(b"HTTP/1.1 200 ")
    assert len(received) < len(body)   # cut short, and closed (read_all saw the end)
