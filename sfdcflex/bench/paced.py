"""A paced load from one thread on `selectors`: many connections, each sending a request every
`interval` seconds, as agents' panels do (spaced keep-alive), back to back (interval 0), or on a
new connection per request.

The rate of spaced load is low (one request per connection per second), so one thread keeps
hundreds of connections busy and the client's own cost does not shape the server's figures. The
connections are staggered over the interval, so requests arrive evenly, never in a burst. Pass 0
(every connection's first request) warms up and is not measured; `on_window(True)` runs when pass
1 begins (back to back: once every warm-up is answered, each connection holding its next request
until then) and `on_window(False)` once the last response is in, which is where a caller reads
the server's CPU or attaches strace. Responses are read up to their Content-Length (or to the close,
for a new connection per request); one unanswered for REQUEST_TIMEOUT counts as an error.
"""
from __future__ import annotations

import math
import selectors
import socket
import time
import urllib.parse
from dataclasses import dataclass
from typing import Callable

from .load import LoadResult, Request, percentile

REQUEST_TIMEOUT = 10.0


def encode(request: Request, host: str, close: bool) -> bytes:
    method, path, body, headers = request
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def response_complete(data: bytes, closed: bool) -> int | None:
    """The status once `data` holds a whole response (to Content-Length, or to the close)."""
    head, found, body = data.partition(b"\r\n\r\n")
    if not found:
        return None
    lines = head.split(b"\r\n")
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if (length is not None and len(body) >= length) or closed:
        return int(lines[0].split()[1])
    return None


@dataclass(eq=False)   # each one is itself: kept in a set while it waits for an answer
class _Connection:
    due: float
    sock: socket.socket | None = None
    sent_at: float = 0.0
    received: bytes = b""
    passes: int = 0


@dataclass(frozen=True)
class Pace:
    """How the connections send: how many, every how many seconds (0: back to back), for how
    many measured passes (each connection sends one request per pass, after one warm-up pass),
    and on a new connection per request or not."""

    connections: int
    interval: float
    passes: int
    new_connection: bool = False


class _PacedRun:
    """The state of one run: connections waiting for their time, those waiting for an answer."""

    def __init__(self, url: str, request: Request, pace: Pace) -> None:
        parts = urllib.parse.urlsplit(url)
        self.address = (parts.hostname, parts.port)
        self.data = encode(request, parts.netloc, pace.new_connection)
        self.pace = pace
        self.selector = selectors.DefaultSelector()
        self.began = time.perf_counter()
        step = pace.interval / pace.connections
        self.waiting = [_Connection(self.began + i * step) for i in range(pace.connections)]
        self.in_flight: set[_Connection] = set()
        self.warmed = 0
        self.ok = self.errors = 0
        self.latencies: list[float] = []

    def send_due(self, now: float) -> float:
        """Send every request whose time has come; return the seconds until the next one."""
        self.waiting.sort(key=lambda c: c.due)
        while self.waiting and self.waiting[0].due <= now:
            connection = self.waiting.pop(0)
            try:
                if connection.sock is None:
                    connection.sock = socket.create_connection(self.address, REQUEST_TIMEOUT)
                    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self.selector.register(connection.sock, selectors.EVENT_READ, connection)
                connection.sent_at = time.perf_counter()
                # a few hundred bytes on loopback: the socket buffer takes them at once
                connection.sock.sendall(self.data)
                self.in_flight.add(connection)
            except OSError:
                self._finish(connection, None, time.perf_counter())
        return min(0.05, self.waiting[0].due - now) if self.waiting else 0.05

    def receive(self, timeout: float) -> None:
        for key, _ in self.selector.select(max(0.0, timeout)):
            connection = key.data
            try:
                chunk = connection.sock.recv(65536)
            except OSError:
                chunk = b""
            connection.received += chunk
            status = response_complete(connection.received, not chunk)
            if status is None and chunk:
                continue
            self.in_flight.discard(connection)
            self._finish(connection, status, time.perf_counter(), closed=not chunk)

    def expire(self, now: float) -> None:
        """A request unanswered for REQUEST_TIMEOUT is an error; its connection is closed."""
        for connection in [c for c in self.in_flight if now - c.sent_at > REQUEST_TIMEOUT]:
            self.in_flight.discard(connection)
            self._finish(connection, None, now)

    def _finish(self, connection: _Connection, status: int | None, finished: float,
                closed: bool = True) -> None:
        if connection.passes > 0:
            self.latencies.append((finished - connection.sent_at) * 1000.0)
            if status == 200:
                self.ok += 1
            else:
                self.errors += 1
        else:
            self.warmed += 1
        connection.passes += 1
        connection.received = b""
        if connection.sock is not None and (self.pace.new_connection or closed):
            self._close(connection)
        if connection.passes <= self.pace.passes:
            connection.due = max(connection.due + self.pace.interval, finished)
            if not self.pace.interval and connection.passes == 1:
                connection.due = math.inf   # back to back: held until every warm-up is in
            self.waiting.append(connection)

    def _close(self, connection: _Connection) -> None:
        self.selector.unregister(connection.sock)
        connection.sock.close()
        connection.sock = None

    def close(self) -> None:
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()
        self.selector.close()


def run_paced(url: str, request: Request, pace: Pace,
              on_window: Callable[[bool], None] = lambda starting: None) -> LoadResult:
    """Send `pace.passes + 1` requests on each connection; the result covers passes 1 and on."""
    run = _PacedRun(url, request, pace)
    # Spaced: pass 1 begins one interval after pass 0 did. Back to back: once pass 0 is answered.
    window_start = run.began + pace.interval if pace.interval else None
    deadline = run.began + (pace.interval + REQUEST_TIMEOUT) * (pace.passes + 2)
    started = ended = None
    try:
        while (run.waiting or run.in_flight) and time.perf_counter() < deadline:
            now = time.perf_counter()
            if started is None and (now >= window_start if window_start is not None
                                    else run.warmed == pace.connections):
                on_window(True)
                started = now = time.perf_counter()
                for connection in run.waiting:   # back to back: the held ones go now
                    if connection.due == math.inf:
                        connection.due = now
            run.receive(run.send_due(now))
            run.expire(time.perf_counter())
        ended = time.perf_counter()
    finally:
        if started is not None:
            on_window(False)
        run.close()
    run.errors += len(run.in_flight) + sum(pace.passes + 1 - c.passes for c in run.waiting)
    run.latencies.sort()
    return LoadResult(ok=run.ok, errors=run.errors, seconds=(ended or 0.0) - (started or 0.0),
                      p50_ms=percentile(run.latencies, 0.50), p99_ms=percentile(run.latencies, 0.99))
