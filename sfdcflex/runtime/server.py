"""Serve an App over HTTP/1.1 with the standard library's socketserver.

The handler only reads the socket into a Request, calls `app.dispatch`, and writes the Reply
in a single `sendall`: the stock BaseHTTPRequestHandler sends headers and body in two writes,
and Nagle's algorithm with delayed ACK then adds ~40 ms to every keep-alive request.
"""
from __future__ import annotations

import logging
import re
import socket
import socketserver
import threading
import time
from functools import partial

from .deadlines import Deadlines
from .errors import (BadRequest, HeadersTooLarge, HTTPError, LengthRequired, PayloadTooLarge,
                     URITooLong, VersionNotSupported)
from .response import Reply, reason
from .app import App, Request

log = logging.getLogger("sfdcflex")

MAX_REQUEST_LINE = 8192
MAX_HEADER_BYTES = 15 * 1024   # Twilio answers 431 past about this much
MAX_HEADER_COUNT = 100
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class _ClientGone(Exception):
    """The client closed the connection or was too slow; nothing more to say to it."""


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class _HttpDate:
    """The Date header (RFC 9110 IMF-fixdate), formatted once a second rather than once a request."""

    def __init__(self) -> None:
        self._second, self._text = -1, ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            t = time.gmtime(second)
            self._text = (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
                          f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")
            self._second = second
        return self._text


class ConnectionHandler(socketserver.BaseRequestHandler):
    """Reads requests off one keep-alive connection and answers each in one write."""

    server: FunctionsServer

    def setup(self) -> None:
        sock = self.request
        sock.settimeout(self.server.read_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # not TCP (a test's socketpair): nothing to tune
        self.rfile = sock.makefile("rb", 65536)
        self.headers_read: list[tuple[str, str]] | None = None  # for the CORS of a refusal

    def finish(self) -> None:
        self.rfile.close()

    def handle(self) -> None:
        server, sock = self.server, self.request
        while True:
            server.reaper.arm(sock, time.monotonic() + server.read_timeout, partial(_shut, sock))
            try:
                parsed = self._read_request()
            except HTTPError as exc:
                log.info("%d - (request rejected before routing: %s)", exc.status, exc.code)
                self._reject(exc)
                return
            except (_ClientGone, OSError, ValueError):
                return  # closed, reset, timed out, or reaped: no traceback for a client that left
            finally:
                server.reaper.disarm(sock)
            if parsed is None:
                return
            request, keep_alive = parsed
            answered = threading.Lock()  # the reply or the watchdog's 504: whichever comes first
            reply = server.app.dispatch(request, partial(self._answer_early, answered))
            if not answered.acquire(blocking=False):
                return  # the 504 went out at the time limit; this connection is done
            try:
                self._send(reply, keep_alive, head_only=request.method == "HEAD")
            except OSError:
                return
            if not keep_alive:
                return

    def _answer_early(self, answered: threading.Lock, reply: Reply) -> None:
        """Send `reply` now, from the runtime's watchdog, unless the function's answer went first."""
        if answered.acquire(blocking=False):
            try:
                self._send(reply, keep_alive=False)
                self.request.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the client left meanwhile

    def _reject(self, exc: HTTPError) -> None:
        """Answer a request refused while reading it, then close gracefully.

        The client may still be sending (a huge body or header); closing at once would reset
        the connection and it might never read the answer. So: answer, stop writing, and drain
        what is in flight for a moment (bounded in bytes and time) before closing.
        """
        sock = self.request
        try:
            self._send(self.server.app.refusal(exc, self.headers_read), keep_alive=False)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(0.5)
            drained, deadline = 0, time.monotonic() + 1.0
            while drained < 1024 * 1024 and time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                drained += len(chunk)
        except OSError:
            pass  # the client is gone: nothing more to do

    def _read_request(self) -> tuple[Request, bool] | None:
        self.headers_read = None
        line = self.rfile.readline(MAX_REQUEST_LINE + 1)
        if line in (b"\r\n", b"\n"):  # RFC 9112 §2.2: ignore one empty line before a request
            line = self.rfile.readline(MAX_REQUEST_LINE + 1)
        if not line:
            return None
        if not line.endswith(b"\n"):
            if len(line) > MAX_REQUEST_LINE:
                raise URITooLong(f"the request line is longer than {MAX_REQUEST_LINE} bytes")
            raise _ClientGone()
        parts = line.decode("latin-1").rstrip("\r\n").split(" ")
        if len(parts) != 3 or not _TOKEN.match(parts[0]) or not parts[1].startswith("/"):
            raise BadRequest("malformed request line", code="bad_request_line")
        method, target, version = parts
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            if re.fullmatch(r"HTTP/\d\.\d", version):
                raise VersionNotSupported(f"{version} is not supported; use HTTP/1.1")
            raise BadRequest("malformed HTTP version", code="bad_request_line")
        headers = self.headers_read = self._read_headers()
        lengths = {value.strip() for name, value in headers if name.lower() == "content-length"}
        if len(lengths) > 1:  # which one a proxy believed is unknowable: request smuggling
            raise BadRequest("conflicting Content-Length headers", code="bad_content_length")
        fields = {name.lower(): value for name, value in headers}
        connection = fields.get("connection", "").lower()
        keep_alive = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
        body = self._read_body(fields)
        return Request(method, target, headers, body, self.client_address[0]), keep_alive

    def _read_headers(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        total = 0
        while True:
            line = self.rfile.readline(MAX_HEADER_BYTES + 1)
            total += len(line)
            # The blank line that ends the headers is not a header line: 100 headers are allowed.
            if total > MAX_HEADER_BYTES or (len(headers) >= MAX_HEADER_COUNT
                                            and line not in (b"\r\n", b"\n")):
                raise HeadersTooLarge(f"request headers are limited to {MAX_HEADER_BYTES} bytes "
                                      f"and {MAX_HEADER_COUNT} lines")
            if not line.endswith(b"\n"):
                raise _ClientGone()
            if line in (b"\r\n", b"\n"):
                return headers
            if line[:1] in (b" ", b"\t"):
                raise BadRequest("obsolete header line folding is not accepted", code="bad_header")
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep or not _TOKEN.match(name):
                raise BadRequest("malformed header line", code="bad_header")
            headers.append((name, value.strip()))

    def _read_body(self, fields: dict[str, str]) -> bytes:
        if "transfer-encoding" in fields:
            # Chunked request bodies are rare from browsers and Twilio; refusing them also
            # closes the door on Content-Length / Transfer-Encoding smuggling.
            raise LengthRequired("send the body with a Content-Length; chunked bodies are not accepted")
        raw = fields.get("content-length", "0").strip()
        if not raw.isdigit():
            raise BadRequest("Content-Length must be a whole number", code="bad_content_length")
        length = int(raw)
        limit = self.server.app.limits.max_body
        if length > limit:
            raise PayloadTooLarge(f"request bodies are limited to {limit} bytes")
        if length and fields.get("expect", "").lower() == "100-continue":
            self.request.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            raise _ClientGone()
        return body

    def _send(self, reply: Reply, keep_alive: bool, head_only: bool = False) -> None:
        lines = [f"HTTP/1.1 {reply.status} {reason(reply.status)}",
                 f"Date: {self.server.http_date.now()}", "Server: sfdcflex"]
        if reply.status not in (204, 304) and not 100 <= reply.status < 200:
            lines.append(f"Content-Length: {len(reply.body)}")
        lines += [f"{name}: {value}" for name, value in reply.headers]
        if not keep_alive:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
        self.request.sendall(head if head_only else head + reply.body)


class FunctionsServer(socketserver.ThreadingTCPServer):
    """A thread per connection, a listen backlog of 128, and a read deadline per request."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: App, *, read_timeout: float = 10.0) -> None:
        self.app = app
        self.read_timeout = read_timeout
        self.reaper = Deadlines(interval=0.25, name="read-deadlines")
        self.http_date = _HttpDate()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, ConnectionHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"

    def handle_error(self, request, client_address) -> None:
        # socketserver prints a traceback to stderr by default; log real faults instead.
        log.exception("connection from %s failed", client_address[0] if client_address else "?")

    def server_close(self) -> None:
        self.reaper.stop()
        super().server_close()


def _shut(sock: socket.socket) -> None:
    """Stop a connection whose request is overdue: its thread's blocked read returns at once."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by its own thread


def start_in_thread(server: FunctionsServer) -> threading.Thread:
    """Run `server.serve_forever` in a daemon thread (tests, the demo, the benchmark)."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="sfdcflex-server", daemon=True)
    thread.start()
    return thread
