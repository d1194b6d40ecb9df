"""The worker's own bounds: memory for a spooled body, and a client that never reads its answer."""
from __future__ import annotations

import json
import socket
import threading
import time

from tests.runtime.http.test_server_bounds import connect, read_all, wait_until
from sfdcflex.runtime.http.limits import ServerLimits


def _post(url: str, path: str, body: bytes) -> bytes:
    with connect(url) as sock:
        sock.sendall(b"POST %s HTTP/1.1\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n" % (path.encode(), len(body)) + body)
        return read_all(sock)


def test_a_spooled_body_that_gets_no_memory_in_time_is_503_and_the_server_goes_on(serve):
    served = serve(server_limits=ServerLimits(spool_threshold=4096, max_body_memory=16 * 1024,
                                              read_timeout=0.3))
    budget = served.server.connections.budget
    small = json.dumps({"wait": "0.6", "pad": "x" * 2950}).encode()   # in memory, held while it runs
    slow = [threading.Thread(target=_post, args=(served.url, "/slow", small)) for _ in range(5)]
    for thread in slow:
        thread.start()
    assert wait_until(lambda: budget.held == 5 * len(small), 3)
    big = json.dumps({"pad": "y" * 10_000}).encode()   # spooled; 10 KB more does not fit in 16 KiB
    with connect(served.url) as sock:   # the head first: a body still to come is spooled
        sock.sendall(b"POST /echo HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(big) + big[:100])
        connections = served.server.connections.open_connections
        assert wait_until(lambda: any(c.received == 100 for c in list(connections.values())), 3)
        started = time.monotonic()
        sock.sendall(big[100:])
        refused = read_all(sock)
    assert refused.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1\r\n" in refused
    assert 0.25 < time.monotonic() - started < 0.55   # it waited its read timeout, no longer
    assert refused.endswith(b'{"error":"server_busy","message":"the server holds too many request bodies; retry shortly"}')
    for thread in slow:
        thread.join(5)
    assert budget.held == 0
    assert _post(served.url, "/echo", big).startswith(b"HTTP/1.1 200 ")


def test_a_client_that_does_not_read_its_answer_is_dropped_after_the_send_timeout(serve):
    served = serve(server_limits=ServerLimits(send_timeout=0.3))
    body = json.dumps({"pad": "z" * 6_000_000}).encode()   # echoed back: more than the send buffer
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    host, port = served.url.split("//")[1].split(":")
    sock.connect((host, int(port)))
    try:
        sock.sendall(b"POST /echo HTTP/1.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
        time.sleep(0.8)   # not reading: the worker's send gives up after 0.3 s
        assert served.call("GET", "/hello").status == 200   # meanwhile others are served
        received = read_all(sock)
    finally:
        sock.close()
    assert received.startswith(b"HTTP/1.1 200 ")
    assert len(received) < len(body)   # cut short, and closed (read_all saw the end)
