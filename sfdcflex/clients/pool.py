"""Keep-alive connections to upstream origins on http.client, one TLS context per process.

Why: a fresh connection costs TCP (1 round trip) + TLS 1.3 (1 more) before the request's own
round trip, and `ssl.create_default_context()` loads the CA store (tens of ms of CPU) every time.

The stale-connection rule. A server may close a kept-alive connection at any moment; a request
written into a connection the server is closing fails without an answer, and nothing tells
whether the server acted on it. So:
- a read-only request (GET, or a POST the caller marks idempotent, like IAM's token check) that
  fails on a *reused* connection before any byte of the answer is sent once more, on a fresh one;
- a failure on a fresh connection is never retried (it costs exactly one call);
- a request that is not idempotent (above all the OAuth refresh_token grant: Salesforce rotates
  refresh tokens and revokes the whole chain when a spent one is presented again) is never sent
  twice. It goes on a fresh connection, or one that answered less than a second ago and shows
  no sign of closing, which is as safe; its failures are never retried.
"""
from __future__ import annotations

import functools
import io
import select
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    import http.client
    import ssl

MAX_BODY_BYTES = 8 * 1024 * 1024
# Idle connections are dropped after 20 s: servers and load balancers close idle keep-alive
# connections after 60 s (AWS ALB, Salesforce's edge) or less (the stand-ins: 30 s), and a
# connection used near that moment races the server's close. A busy agent calls far more often.
IDLE_SECONDS = 20.0
# Idle connections kept per origin: more than the few calls one lookup makes at once, few enough
# that an upstream is never holding dozens of sockets for us.
MAX_IDLE_PER_ORIGIN = 8
# A connection that answered this recently may carry a request that must not be sent twice.
JUST_USED_SECONDS = 1.0
USER_AGENT = "sfdcflex"

_contexts: dict[str | None, "ssl.SSLContext"] = {}
_contexts_lock = threading.Lock()


class BodyTooLarge(Exception):
    """The answer's body is larger than MAX_BODY_BYTES."""


class _Unanswered(Exception):
    """The request failed before any byte of an answer arrived; `error` says how."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error


# How a kept-alive connection the server has closed fails: on the write, or on the first read.
_CLOSED_UNDER_US = (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)


@dataclass(frozen=True)
class RawReply:
    """One HTTP answer as received: status, lower-cased headers, body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """The process's TLS context (system CAs, certificate and host name verified), made once.

    `ca_file` trusts that CA bundle instead (tests and the benchmark's self-signed upstream).
    """
    context = _contexts.get(ca_file)
    if context is None:
        import ssl
        with _contexts_lock:
            context = _contexts.get(ca_file)
            if context is None:
                context = ssl.create_default_context(cafile=ca_file)
                _contexts[ca_file] = context
    return context


@dataclass
class _Idle:
    connection: http.client.HTTPConnection
    since: float


Origin = tuple[str, str, int]


def _split(url: str) -> tuple[Origin, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("only http and https URLs can be called")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return (parts.scheme, parts.hostname, port), target


def _looks_alive(connection: http.client.HTTPConnection) -> bool:
    """An idle connection has nothing to read; readable means the server's FIN, RST or junk."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


class Transport:
    """Sends requests over a small, thread-safe keep-alive pool per origin (scheme, host, port)."""

    def __init__(self, *, ca_file: str | None = None, idle_seconds: float = IDLE_SECONDS,
                 max_idle_per_origin: int = MAX_IDLE_PER_ORIGIN,
                 just_used_seconds: float = JUST_USED_SECONDS) -> None:
        self.ca_file = ca_file
        self.just_used_seconds = just_used_seconds
        self.idle_seconds = idle_seconds
        self.max_idle_per_origin = max_idle_per_origin
        self.connections_opened = 0
        self.retries = 0
        self._idle: dict[Origin, list[_Idle]] = {}
        self._lock = threading.Lock()

    def send(self, method: str, url: str, headers: dict[str, str], body: bytes | None, *,
             timeout: float, idempotent: bool) -> RawReply:
        """One request and its answer within `timeout` seconds in all (connecting, sending,
        every read), however slowly the answer trickles in; raises OSError (TimeoutError past
        the time) / http.client.HTTPException / BodyTooLarge."""
        deadline = time.monotonic() + timeout
        origin, target = _split(url)
        fresh_within = self.idle_seconds if idempotent else self.just_used_seconds
        connection = self._checkout(origin, fresh_within)
        reused = connection is not None
        try:
            return self._exchange(origin, connection or self._connect(origin, deadline),
                                  method, target, headers, body, deadline)
        except _Unanswered as failure:
            # http.client's RemoteDisconnected (no status line at all) is a ConnectionResetError.
            if not (reused and idempotent and isinstance(failure.error, _CLOSED_UNDER_US)):
                raise failure.error from None
        with self._lock:
            self.retries += 1
        # The kept-alive connection was closed under us before any answer: once more, fresh.
        try:
            return self._exchange(origin, self._connect(origin, deadline), method, target, headers,
                                  body, deadline)
        except _Unanswered as failure:
            raise failure.error from None

    def close(self) -> None:
        """Close every idle connection (connections in use close when their call ends)."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for entries in idle.values():
            for entry in entries:
                entry.connection.close()

    def idle_count(self) -> int:
        with self._lock:
            return sum(len(entries) for entries in self._idle.values())

    def _checkout(self, origin: Origin, fresh_within: float) -> http.client.HTTPConnection | None:
        """The most recently used idle connection to `origin` that is young enough and alive."""
        now = time.monotonic()
        expired: list[_Idle] = []
        chosen = None
        with self._lock:
            for entries in self._idle.values():
                keep = [e for e in entries if now - e.since < self.idle_seconds]
                expired.extend(e for e in entries if now - e.since >= self.idle_seconds)
                entries[:] = keep
            entries = self._idle.get(origin, [])
            while entries and chosen is None:
                entry = entries.pop()  # newest first: the least likely to be closed by the server
                if now - entry.since < fresh_within and _looks_alive(entry.connection):
                    chosen = entry.connection
                elif now - entry.since < fresh_within:
                    expired.append(entry)
                else:
                    entries.append(entry)  # fine for a read, too old for this request
                    break
        for entry in expired:
            entry.connection.close()
        return chosen

    def _checkin(self, origin: Origin, connection: http.client.HTTPConnection) -> None:
        surplus = None
        with self._lock:
            entries = self._idle.setdefault(origin, [])
            entries.append(_Idle(connection, time.monotonic()))
            if len(entries) > self.max_idle_per_origin:
                surplus = entries.pop(0)
        if surplus is not None:
            surplus.connection.close()

    def _connect(self, origin: Origin, deadline: float) -> http.client.HTTPConnection:
        import http.client
        timeout = _remaining(deadline)
        scheme, host, port = origin
        tunnel = _proxy_for(scheme, host)
        if scheme == "https":
            address = tunnel or (host, port)
            connection = http.client.HTTPSConnection(*address, timeout=timeout,
                                                     context=tls_context(self.ca_file))
            if tunnel:
                connection.set_tunnel(host, port)
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
        connection.connect()  # here, so a failure to connect is never mistaken for a stale reuse
        with self._lock:
            self.connections_opened += 1
        return connection

    def _exchange(self, origin: Origin, connection: http.client.HTTPConnection, method: str,
                  target: str, headers: dict[str, str], body: bytes | None, deadline: float) -> RawReply:
        keep = False
        try:
            connection.sock.settimeout(_remaining(deadline))
            # http.client reads the answer through the response's file; this one gives every
            # read only the time left, so an answer sent a byte at a time ends at the deadline.
            connection.response_class = functools.partial(_deadline_response, deadline=deadline)
            try:
                connection.request(method, target, body=body,
                                   headers={"User-Agent": USER_AGENT, **headers})
                response = connection.getresponse()
            except OSError as error:
                raise _Unanswered(error) from error
            payload = response.read(MAX_BODY_BYTES + 1)
            if len(payload) > MAX_BODY_BYTES:
                raise BodyTooLarge()
            # http.client sets will_close for HTTP/1.0 answers without keep-alive and for
            # `Connection: close` (RFC 9112 section 9.3).
            keep = not response.will_close
            return RawReply(response.status, _lower_headers(response.headers), payload)
        finally:
            if keep:
                self._checkin(origin, connection)
            else:
                connection.close()


def _remaining(deadline: float) -> float:
    """Seconds left before `deadline`; TimeoutError when none are."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the call's time is up")
    return left


class _DeadlineReader(io.RawIOBase):
    """The socket's file, each read limited to the time left before the call's deadline.

    A socket timeout bounds one read only: an answer trickling in a byte a second would keep
    the call (and the request waiting on it) alive for as long as the upstream likes.
    """

    def __init__(self, sock, socket_file: io.RawIOBase, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._file = socket_file   # keeps the socket open after http.client "closes" it (will_close)
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self._sock.settimeout(_remaining(self._deadline))
        return self._file.readinto(buffer)

    def close(self) -> None:
        self._file.close()
        super().close()


def _deadline_response(sock, deadline: float, **kwargs) -> http.client.HTTPResponse:
    """http.client's response, reading its socket's file through a _DeadlineReader."""
    import http.client
    response = http.client.HTTPResponse(sock, **kwargs)
    response.fp = io.BufferedReader(_DeadlineReader(sock, response.fp.detach(), deadline))
    return response


def _lower_headers(message) -> dict[str, str]:
    merged: dict[str, str] = {}
    for name, value in message.items():
        key = name.lower()
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return merged


def _proxy_for(scheme: str, host: str) -> tuple[str, int] | None:
    """The HTTPS proxy from the environment (https_proxy, no_proxy) for an https origin, if any."""
    if scheme != "https":
        return None
    import urllib.request  # only to read the proxy settings the way urllib always did
    proxy = urllib.request.getproxies_environment().get("https")
    if not proxy or urllib.request.proxy_bypass_environment(host):
        return None
    parts = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return (parts.hostname, parts.port or 8080) if parts.hostname else None
