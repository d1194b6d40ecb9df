"""The server under hostile load, over real sockets: strict heads, lingering close, and bounds on
connections, threads, body memory and idle time; EMFILE back-off (graceful close: tests/test_server.py)."""
from __future__ import annotations

import errno
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from sfdcflex.runtime.http.server import FunctionsServer, listen, start_in_thread

from sfdcflex.runtime.http.limits import ServerLimits


def connect(url: str, timeout: float = 5.0) -> socket.socket:
    host, port = url.split("//")[1].split(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


def read_all(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def read_one(sock: socket.socket) -> bytes:
    """One whole response off a keep-alive connection, by its Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def exchange(url: str, data: bytes) -> bytes:
    with connect(url) as sock:
        sock.sendall(data)
        return read_all(sock)


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


# --- strict heads (RFC 9112 §5) ----------------------------------------------------------------

@pytest.mark.parametrize("request_bytes", [
    b"GET /hello HTTP/1.1\r\nX-A: one\rtwo\r\n\r\n",                      # bare CR in a value
    b"GET /hello HTTP/1.1\r\nX-A: on\x00e\r\n\r\n",                       # NUL
    b"GET /hello HTTP/1.1\nHost: x\n\n",                                   # bare LF line ends
    b"GET /hello HTTP/1.1\r\nHost: x\n\r\n",                               # one bare LF
    "POST /echo HTTP/1.1\r\nContent-Length: \u00b2\r\n\r\n".encode(),      # a non-ASCII digit
    b"POST /echo HTTP/1.1\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nContent-Length: " + b"1" * 19 + b"\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nContent-Length: +2\r\n\r\n{}",
    b"POST /echo HTTP/1.1\r\nContent-Length: \r\n\r\n",
])
def test_lax_heads_are_400_json_and_closed(runtime, request_bytes):
    answer = exchange(runtime.url, request_bytes)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:80]
    assert b"Connection: close" in answer
    error = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert set(error) == {"error", "message"}


def test_the_bare_lf_head_is_answered_before_it_ends(runtime):
    # A client sending LF-only lines never sends CRLF CRLF: it must not wait for the read timeout.
    with connect(runtime.url, timeout=2) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\nHost: x\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400 ")


# --- lingering close after 413 --------------------------------------------------------------

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
    head = b"POST /echo HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (7 * 1024 * 1024)
    with connect(runtime.url, timeout=10) as sock:
        sock.sendall(head + b"x" * (7 * 1024 * 1024))
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"payload_too_large" in answer


def test_route_limit_applies_from_content_length_before_the_body(serve):
    served = serve(body_limits={"/echo": 1024})
    with connect(served.url, timeout=5) as sock:  # the body never comes: no wait for it
        sock.sendall(b"POST /echo HTTP/1.1\r\nContent-Length: 1025\r\n\r\n")
        assert sock.recv(200).startswith(b"HTTP/1.1 413 ")
    answer = served.call("POST", "/echo", body=b'{"a":"' + b"b" * 1000 + b'"}',
                         headers={"Content-Type": "application/json"})
    assert answer.status == 200


def test_lingering_is_bounded_in_time(serve):
    served = serve(server_limits=ServerLimits(linger_seconds=0.3))
    with connect(served.url, timeout=5) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nContent-Length: 9999999\r\n\r\n")
        started = time.monotonic()
        assert read_all(sock).startswith(b"HTTP/1.1 413 ")  # the server stops writing at once
        wait_until(lambda: not served.server.connections.open_connections, 3)
        assert not served.server.connections.open_connections
        assert time.monotonic() - started < 2.5


# --- bounds ----------------------------------------------------------------------------------

def test_past_max_connections_new_ones_wait_until_one_closes(serve):
    served = serve(server_limits=ServerLimits(max_connections=3))
    held = [connect(served.url) for _ in range(3)]
    assert wait_until(lambda: len(served.server.connections.open_connections) == 3)
    late = connect(served.url, timeout=0.3)  # the kernel's backlog completes the handshake
    try:
        late.sendall(b"GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n")
        with pytest.raises(socket.timeout):
            late.recv(100)
        held.pop().close()
        late.settimeout(5)
        assert read_all(late).startswith(b"HTTP/1.1 200 ")
    finally:
        late.close()
        for sock in held:
            sock.close()


def test_idle_connections_cost_no_thread(serve):
    served = serve(server_limits=ServerLimits(threads=6))
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


def test_idle_keep_alive_connection_is_closed_after_the_idle_time(serve):
    served = serve(server_limits=ServerLimits(keepalive_timeout=0.3))
    with connect(served.url) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\n\r\n")
        assert sock.recv(1000).startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        assert sock.recv(100) == b""
        assert 0.2 <= time.monotonic() - started < 2.0


def test_bodies_past_the_threshold_are_spooled_and_memory_stays_in_budget(serve):
    served = serve(server_limits=ServerLimits(spool_threshold=4096, max_body_memory=16 * 1024))
    budget = served.server.connections.budget
    body = json.dumps({"a": "b" * 100_000}).encode()
    socks = [connect(served.url) for _ in range(5)]
    try:
        for sock in socks:  # five bodies half sent: on disk, not in memory
            sock.sendall(b"POST /echo HTTP/1.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body[:50_000])
        assert wait_until(lambda: sum(c.received for c in
                                      list(served.server.connections.open_connections.values())) >= 250_000)
        assert budget.held == 0
        small = [connect(served.url) for _ in range(6)]  # 6 x 3 KiB in memory: the budget is full
        for sock in small:
            sock.sendall(b"POST /echo HTTP/1.1\r\nContent-Length: 3000\r\n\r\n{")
        assert wait_until(lambda: budget.held == 5 * 3000)
        for sock in small:
            sock.sendall(b'"a":"' + b"x" * 2992 + b'"}')
        for sock in socks:
            sock.sendall(body[50_000:] + b"\r\n")  # an empty line after a body is allowed
        with ThreadPoolExecutor(11) as pool:
            answers = list(pool.map(lambda s: s.recv(300_000), socks + small))
        assert all(a.startswith(b"HTTP/1.1 200 ") for a in answers), [a[:20] for a in answers]
        assert wait_until(lambda: budget.held == 0)
    finally:
        for sock in socks + small:
            sock.close()


class _AcceptFails:
    """The listening socket of a process out of descriptors: accept() raises EMFILE."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.calls = sock, 0

    def accept(self):
        self.calls += 1
        raise OSError(errno.EMFILE, "Too many open files")

    def __getattr__(self, name):
        return getattr(self.sock, name)


def test_emfile_on_accept_backs_off_instead_of_spinning(serve):
    app = serve().app
    server = FunctionsServer(listen(("127.0.0.1", 0)), app, ServerLimits())
    server.socket = failing = _AcceptFails(server.socket)
    start_in_thread(server)
    try:
        client = socket.create_connection(server.server_address, timeout=2)  # backlog: accepted by the kernel
        time.sleep(0.8)  # what is measured is how often accept() runs in this time
        client.close()
    finally:
        server.shutdown()
        server.server_close()
    assert 1 <= failing.calls <= 3  # one try per 0.5 s pause, not thousands


def test_a_fault_with_one_connection_does_not_stop_the_server(serve, monkeypatch, caplog):
    served = serve()
    pool = served.server.connections
    real = pool._advance

    def fails_once(connection):
        monkeypatch.setattr(pool, "_advance", real)
        raise RuntimeError("planted")

    monkeypatch.setattr(pool, "_advance", fails_once)
    assert exchange(served.url, b"GET /hello HTTP/1.1\r\n\r\n") == b""  # that one is closed
    assert served.call("GET", "/hello").status == 200
    assert "planted" in caplog.text


def test_no_descriptor_for_a_spool_file_is_503_and_the_server_goes_on(serve, monkeypatch):
    served = serve(server_limits=ServerLimits(spool_threshold=1024))

    def no_descriptors(*args, **kwargs):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr("sfdcflex.runtime.http.body.tempfile.TemporaryFile", no_descriptors)
    answer = exchange(served.url, b"POST /echo HTTP/1.1\r\nContent-Length: 5000\r\n\r\n{")
    assert answer.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1" in answer
    assert served.call("GET", "/hello").status == 200


@pytest.mark.parametrize("pause", [0.0, 0.05])
def test_keep_alive_request_split_anywhere_is_served_whole(runtime, pause):
    # A worker keeps a keep-alive connection for ~10 ms: a request split across that moment
    # goes back to the I/O thread half read and must still be answered exactly once.
    body = b'{"n": 1}'
    request = (b"POST /echo HTTP/1.1\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body) + body)
    with connect(runtime.url) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\n\r\n")
        assert sock.recv(1000).startswith(b"HTTP/1.1 200 ")
        for split in (10, len(request) - len(body), len(request) - 2):
            sock.sendall(request[:split])
            time.sleep(pause)  # the client's own pause is what is tested
            sock.sendall(request[split:])
            answer = read_one(sock)
            assert answer.startswith(b"HTTP/1.1 200 ") and b'"n":1' in answer
