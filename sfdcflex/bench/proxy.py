"""A delaying TCP proxy on loopback: makes a stand-in look `rtt_ms` away, as a real org is.

Every chunk is held for half the round trip in each direction, so a request and its answer
cost one round trip, and a TLS handshake passing through costs its own round trips. Connection
set-up is charged on the first chunk a client sends: one round trip for TCP (the kernel
accepts at once on loopback), plus one for TLS 1.3 when the upstream speaks plain HTTP and the
handshake does not pass through (`tls_charged`). Only 127.0.0.1 is ever contacted.
"""
from __future__ import annotations

import heapq
import socket
import threading
import time

CHUNK = 65536


class DelayProxy:
    """Listens on 127.0.0.1:0 and forwards to 127.0.0.1:`upstream_port` with the delays above."""

    def __init__(self, upstream_port: int, rtt_ms: float, *, tls_charged: bool) -> None:
        self.upstream_port = upstream_port
        self.one_way = rtt_ms / 2000.0
        self.setup = (2 if tls_charged else 1) * rtt_ms / 1000.0
        self.connections = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="delay-proxy", daemon=True)

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    def start(self) -> "DelayProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def __enter__(self) -> "DelayProxy":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections += 1
                self._sockets += [client, upstream]
            opened = time.monotonic()
            _Pipe(client, upstream, self.one_way, opened + self.setup).start()
            _Pipe(upstream, client, self.one_way, 0.0).start()


class _Pipe:
    """One direction: a reader stamps each chunk, a writer sends it once its delay has passed."""

    def __init__(self, source: socket.socket, target: socket.socket, delay: float,
                 not_before: float) -> None:
        self.source, self.target, self.delay, self.not_before = source, target, delay, not_before
        self._queue: list[tuple[float, int, bytes]] = []
        self._ready = threading.Condition()
        self._count = 0

    def start(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._write, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = self.source.recv(CHUNK)
            except OSError:
                data = b""
            due = max(time.monotonic(), self.not_before) + self.delay
            with self._ready:
                self._count += 1
                heapq.heappush(self._queue, (due, self._count, data))
                self._ready.notify()
            if not data:
                return

    def _write(self) -> None:
        while True:
            with self._ready:
                while not self._queue:
                    self._ready.wait()
                due, _, data = self._queue[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._ready.wait(wait)
                    continue
                heapq.heappop(self._queue)
            if not data:  # the source closed: pass the close on, after the same delay
                try:
                    self.target.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            try:
                self.target.sendall(data)
            except OSError:
                return
