"""A small loopback HTTP server that stand-ins for outside services build on.

Each stand-in subclasses `StandIn` and maps a `Request` to an endpoint name and a
handler returning a `Response`. This module does the socket work: a
ThreadingHTTPServer on 127.0.0.1:0, HTTP/1.1 keep-alive, one write per response
(two writes stall behind Nagle's algorithm and delayed ACKs), per-endpoint call
counters, connection counters, and fault injection (an error status, a stall, a TCP reset
before or after the handler ran, or an answer cut off half way).
"""
from __future__ import annotations

import collections
import email.utils
import json
import socket
import struct
import time
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

# A stall never outlives this, so a forgotten fault cannot wedge a test run.
MAX_STALL_SECONDS = 60.0
# Idle keep-alive connections are dropped after this, like any real front end.
IDLE_TIMEOUT_SECONDS = 30.0
MAX_BODY_BYTES = 1 << 20
# How often the serving loop looks for a stop on its own; stop() wakes it at once (_shut_down_now).
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Request:
    """One parsed HTTP request: method, path, first value of each query name, headers, body."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def form(self) -> dict[str, str]:
        """The body as application/x-www-form-urlencoded, first value of each name."""
        pairs = urllib.parse.parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        form: dict[str, str] = {}
        for name, value in pairs:
            form.setdefault(name, value)
        return form

    def json(self) -> Any:
        """The body as JSON, or None when it is not valid JSON."""
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


@dataclass
class Response:
    """What a handler answers; the base server turns it into bytes in one write."""

    status: int
    body: bytes = b""
    content_type: str = "application/json;charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    """A Response whose body is `payload` as compact JSON."""
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return Response(status, body, headers=dict(headers or {}))


@dataclass
class Fault:
    """A queued misbehaviour for the next `remaining` calls of one endpoint."""

    status: int | None
    body: bytes | None
    content_type: str | None
    stall: float
    reset: bool
    remaining: int
    # "after": the handler runs (its effect happens), then the connection is reset unanswered;
    # "truncate": the handler runs and half of its answer is sent before the reset.
    drop: str | None = None
    hold: threading.Event | None = None  # stall until set (bounded like a stall)
    trickle: float = 0.0  # the handler's answer sent one byte per `trickle` seconds


Handler = Callable[[Request], Response]


class StandIn:
    """Base of the stand-in servers: start/stop, `url`, `calls` and `fail_next`."""

    server_name = "standin"

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.connections_accepted = 0
        self._lock = threading.RLock()
        self._faults: dict[str, list[Fault]] = {}
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self._tls_host = ""
        self._thread: threading.Thread | None = None
        # Told of every answered request (the demo's link trace watches the authorize page).
        self.on_exchange: Callable[[Request, Response, float], None] | None = None

    # -- what subclasses provide -------------------------------------------------
    def route(self, request: Request) -> tuple[str | None, Handler]:
        """The endpoint name (None for unknown paths, not counted) and its handler."""
        raise NotImplementedError

    def fault_response(self, name: str, status: int) -> Response:
        """The service's own error body for an injected status without a body."""
        return json_response(status, {"status": status})

    # -- lifecycle -----------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        host, port = self._server.server_address[:2]
        if self._tls_host:
            return f"https://{self._tls_host}:{port}"
        return f"http://{host}:{port}"

    def start(self, tls: tuple[Path, Path] | None = None, tls_host: str = "localhost") -> "StandIn":
        """Listen on 127.0.0.1 on a free port and serve from a daemon thread; with `tls`
        (certificate and key files for `tls_host`), speak HTTPS and name `tls_host` in `url`."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _QuietServer(("127.0.0.1", 0), _StandInRequestHandler)
        self._tls_host = tls_host if tls else ""
        if tls:
            import ssl
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            server.socket = context.wrap_socket(server.socket, server_side=True)
        server.standin = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name=type(self).__name__,
                                        kwargs={"poll_interval": POLL_SECONDS}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake stalled handlers and drop open keep-alive connections."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        _shut_down_now(server)
        self.drop_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "StandIn":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- fault injection -------------------------------------------------------------
    def fail_next(self, name: str, *, status: int | None = None, body: bytes | None = None,
                  content_type: str | None = None, count: int = 1, stall: float = 0.0,
                  reset: bool = False, drop: str | None = None,
                  hold: threading.Event | None = None, trickle: float = 0.0) -> None:
        """Make the next `count` calls of endpoint `name` stall (for `stall` seconds, or until
        the test sets `hold`), fail with `status`, reset, run and then drop the connection
        (`drop="after"`) or cut the answer (`drop="truncate"`), or run and send the answer one
        byte every `trickle` seconds (a hostile or failing upstream that keeps a call alive)."""
        if status is None and not stall and not reset and drop is None and hold is None \
                and not trickle:
            raise ValueError("fail_next needs status, stall, hold, reset, drop or trickle")
        if drop not in (None, "after", "truncate"):
            raise ValueError('drop must be "after" or "truncate"')
        fault = Fault(status, body, content_type, min(float(stall), MAX_STALL_SECONDS),
                      reset, max(1, int(count)), drop, hold, float(trickle))
        with self._lock:
            self._faults.setdefault(name, []).append(fault)

    def _take_fault(self, name: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(name)
            if not queue:
                return None
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.pop(0)
            return fault

    def drop_connections(self) -> None:
        """Close every open connection, as a server does with idle keep-alive connections."""
        with self._lock:
            open_connections = list(self._connections)
        for connection in open_connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # -- one request -------------------------------------------------------------------
    def observe(self, name: str, request: Request) -> None:
        """Called for every counted request as it arrives, before any fault; for subclasses."""

    def answer(self, request: Request) -> Response | None:
        """The response to `request`; None to reset the connection unanswered, or a `_Dropped`
        response when a drop fault applies after the handler ran."""
        name, handler = self.route(request)
        if name is None:
            return handler(request)
        with self._lock:
            self.calls[name] += 1
        self.observe(name, request)
        fault = self._take_fault(name)
        if fault is None:
            return handler(request)
        if fault.drop is not None:
            return _Dropped(handler(request), fault.drop)
        if fault.trickle:
            return _Trickled(handler(request), fault.trickle)
        if fault.stall and self._stopping.wait(fault.stall):
            return None
        if fault.hold is not None and not self._held(fault.hold):
            return None
        if fault.reset:
            return None
        if fault.status is None:
            return handler(request)
        if fault.body is None:
            return self.fault_response(name, fault.status)
        return Response(fault.status, fault.body, fault.content_type or "application/json")

    def _held(self, hold: threading.Event) -> bool:
        """Wait until the test sets `hold`; False when the stand-in stops or the bound runs out."""
        deadline = time.monotonic() + MAX_STALL_SECONDS
        while not hold.wait(0.01):
            if self._stopping.is_set() or time.monotonic() >= deadline:
                return False
        return True

    def _track(self, connection: socket.socket, is_open: bool) -> None:
        with self._lock:
            if is_open:
                self.connections_accepted += 1
                self._connections.add(connection)
            else:
                self._connections.discard(connection)


class _Dropped(Response):
    """A response the handler made that is then dropped (`how`: "after" or "truncate")."""

    def __init__(self, response: Response, how: str) -> None:
        super().__init__(response.status, response.body, response.content_type, response.headers)
        self.how = how


class _Trickled(Response):
    """A response the handler made, sent one byte every `interval` seconds."""

    def __init__(self, response: Response, interval: float) -> None:
        super().__init__(response.status, response.body, response.content_type, response.headers)
        self.interval = interval


class _QuietServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that never prints tracebacks and never waits on handlers."""

    daemon_threads = True
    # Handler threads may sit on idle keep-alive sockets; stop() closes those itself.
    block_on_close = False
    # urllib opens a connection per upstream call; the default backlog of 5 overflows under load
    # and the kernel retries a refused SYN only after a second.
    request_queue_size = 128
    standin: StandIn

    def handle_error(self, request: object, client_address: object) -> None:
        """Client disconnects are normal for a test server: say nothing."""


def _shut_down_now(server: _QuietServer) -> None:
    """`server.shutdown()` without waiting out the loop's poll interval: once the stop is asked
    for, a connection to the listening socket wakes the loop's select. A test run stops about a
    thousand stand-ins; a 20 ms interval alone cost it ten seconds."""
    stopper = threading.Thread(target=server.shutdown, name="standin-stop", daemon=True)
    stopper.start()
    while stopper.is_alive():
        try:
            socket.create_connection(server.server_address[:2], timeout=1).close()
        except OSError:
            pass  # the backlog is full or the loop is gone: the poll interval still ends it
        stopper.join(0.005)


class _StandInRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_SECONDS
    server: _QuietServer

    def setup(self) -> None:
        super().setup()
        self.server.standin._track(self.connection, True)

    def finish(self) -> None:
        self.server.standin._track(self.connection, False)
        try:
            super().finish()
        except OSError:
            pass

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, OSError, ValueError):
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        """Stand-ins log nothing; tests read `calls` instead."""

    def _serve(self) -> None:
        request = self._read_request()
        if request is None:
            return
        started = time.perf_counter()
        response = self.server.standin.answer(request)
        if response is not None and self.server.standin.on_exchange is not None:
            self.server.standin.on_exchange(request, response, time.perf_counter() - started)
        if isinstance(response, _Dropped) and response.how == "truncate":
            self._write(response, head_only=False, cut=True)
        if response is None or isinstance(response, _Dropped):
            self._reset_connection()
            return
        self._write(response, head_only=request.method == "HEAD")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

    def _read_request(self) -> Request | None:
        length_text = self.headers.get("Content-Length", "0") or "0"
        # ASCII digits only: "²".isdigit() is true but int("²") fails.
        bad_length = not (length_text.isascii() and length_text.isdigit())
        if bad_length or int(length_text) > MAX_BODY_BYTES:
            self.close_connection = True
            self._write(Response(400 if bad_length else 413, b"", "text/plain"), head_only=False)
            return None
        body = self.rfile.read(int(length_text)) if int(length_text) else b""
        split = urllib.parse.urlsplit(self.path)
        query: dict[str, str] = {}
        for name, value in urllib.parse.parse_qsl(split.query, keep_blank_values=True):
            query.setdefault(name, value)
        headers = {name.lower(): value for name, value in self.headers.items()}
        return Request(self.command, split.path, query, headers, body)

    def _write(self, response: Response, *, head_only: bool, cut: bool = False) -> None:
        reason = self.responses.get(response.status, ("",))[0]
        lines = [f"HTTP/1.1 {response.status} {reason}",
                 f"Date: {email.utils.formatdate(usegmt=True)}",
                 f"Server: {self.server.standin.server_name}",
                 f"Content-Length: {len(response.body)}"]
        if response.body or response.status not in (204, 304):
            lines.append(f"Content-Type: {response.content_type}")
        lines.extend(f"{name}: {value}" for name, value in response.headers.items())
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        whole = head if head_only else head + response.body
        if isinstance(response, _Trickled):
            self._trickle(whole, response.interval)
            return
        self.wfile.write(whole[:len(head) + len(response.body) // 2] if cut else whole)

    def _trickle(self, data: bytes, interval: float) -> None:
        """One byte at a time, each `interval` apart; bounded like a stall, ended by stop()."""
        deadline = time.monotonic() + MAX_STALL_SECONDS
        stopping = self.server.standin._stopping
        for index in range(len(data)):
            self.wfile.write(data[index:index + 1])
            self.wfile.flush()
            if stopping.wait(interval) or time.monotonic() >= deadline:
                self.close_connection = True
                return

    def _reset_connection(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()
