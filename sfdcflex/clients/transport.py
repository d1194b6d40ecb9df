"""The one place that makes HTTP calls to outside services (Salesforce, Twilio IAM, Twilio Sync).

Every client is given a transport (the `Transport` from pool.py, or a test's own), so tests and
the demo point the same code at local stand-ins. `call` returns every HTTP answer, whatever its
status, as a `Reply`; each client maps statuses to its own errors (errors.py). Network failures become
`Unreachable` with a message that names the service and never the URL.

`Transport` keeps connections alive in a small pool per origin and shares one TLS context, so a
call to an org costs one round trip instead of three (TCP, TLS 1.3, then the request) and no
CA-store load; pool.py also holds the rule for connections that die under a request.
"""
from __future__ import annotations

import base64
import ipaddress
import json
import socket
import time
import urllib.parse
from dataclasses import dataclass
from typing import Mapping, Protocol

from .errors import NotJson, Unreachable, UrlRefused
from .pool import MAX_BODY_BYTES, BodyTooLarge, RawReply, Transport

__all__ = ["MAX_BODY_BYTES", "RawReply", "Reply", "Sender", "Transport", "basic_auth", "call",
           "check_upstream_url", "default_transport", "is_loopback_host"]

# RFC 9110 section 9.2.2: these methods may be repeated with the same effect as sending once.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class Sender(Protocol):
    """What `call` needs from a transport; tests and the benchmark may give their own."""

    def send(self, method: str, url: str, headers: dict[str, str], body: bytes | None, *,
             timeout: float, idempotent: bool) -> RawReply: ...


@dataclass(frozen=True)
class Reply:
    """One HTTP answer: status, lower-cased headers, the body bytes and how long it took."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    duration_ms: float
    service: str = "upstream"

    def json(self) -> object:
        """The body parsed as JSON; an HTML error page or garbage is NotJson."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise NotJson(f"{self.service} answered {self.status} with a body that is not JSON",
                          status=self.status) from None
        except RecursionError:   # [[[[...]]]] 100,000 deep: json's decoder recurses per level
            raise NotJson(f"{self.service} answered {self.status} with JSON nested too deeply to read",
                          status=self.status) from None


def default_transport(ca_file: str | None = None) -> Transport:
    """A pooled transport trusting the system CA store, or `ca_file` (tests only); an HTTPS
    proxy from the environment (https_proxy, no_proxy) still applies."""
    return Transport(ca_file=ca_file)


def is_loopback_host(host: str) -> bool:
    """Whether a URL host names this machine (localhost, 127.0.0.0/8 or ::1)."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_upstream_url(name: str, url: str) -> str:
    """Return `url` without a trailing slash, or raise UrlRefused unless it is https (http on loopback)."""
    parts = urllib.parse.urlsplit(url.strip())
    host = parts.hostname or ""
    if not host or parts.username or parts.password or parts.query or parts.fragment:
        raise UrlRefused(name, f"{name} must be a plain URL like https://host[/path], "
                          "without user, query or fragment")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(host)):
        return url.strip().rstrip("/")
    raise UrlRefused(name, f"{name} must use https:// (http:// is allowed only for localhost / 127.0.0.1 / ::1)")


def _encode_body(headers: dict[str, str], form: Mapping[str, str] | None, json_body: object) -> bytes | None:
    if form is not None:
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        return urllib.parse.urlencode(form).encode("ascii")
    if json_body is not None:
        headers.setdefault("Content-Type", "application/json")
        return json.dumps(json_body).encode("utf-8")
    return None


def _cause(error: BaseException) -> BaseException:
    """The socket error inside a urllib URLError (the benchmark's per-call sender raises those)."""
    reason = getattr(error, "reason", None)
    return reason if isinstance(reason, BaseException) else error


def _failure_reason(error: BaseException) -> str:
    """Name a network failure in a few words; the exception text may hold a host or URL, so it is not used."""
    import http.client
    import ssl
    error = _cause(error)
    if isinstance(error, (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError,
                          http.client.IncompleteRead)):
        return "reset"
    if isinstance(error, ConnectionRefusedError):
        return "refused"
    if isinstance(error, socket.gaierror):
        return "host name not found"
    if isinstance(error, ssl.SSLError):
        return "TLS handshake or certificate failed"
    if isinstance(error, http.client.HTTPException):
        return "malformed HTTP answer"
    return "network error"


def call(transport: Sender, service: str, method: str, url: str, *,
         headers: Mapping[str, str] | None = None, form: Mapping[str, str] | None = None,
         json_body: object = None, timeout: float = 8.0, idempotent: bool | None = None) -> Reply:
    """Send one request and return its answer whatever the status; network failures raise Unreachable.

    `idempotent` (default: by method) says whether the request may be sent again after a reused
    connection turned out dead; say False for anything whose repetition does harm.
    """
    import http.client  # the transport loads it on first use anyway; a dictionary look-up after that
    all_headers = {"Accept": "application/json", **(headers or {})}
    data = _encode_body(all_headers, form, json_body)
    if idempotent is None:
        idempotent = method.upper() in IDEMPOTENT_METHODS
    started = time.perf_counter()
    try:
        raw = transport.send(method, url, all_headers, data, timeout=timeout, idempotent=idempotent)
    except BodyTooLarge:
        raise Unreachable(f"{service} answered with more than {MAX_BODY_BYTES // (1024 * 1024)} MiB") from None
    except (OSError, http.client.HTTPException) as error:
        if isinstance(_cause(error), (TimeoutError, socket.timeout)):
            raise Unreachable(f"{service} did not answer in {timeout:g} s") from None
        raise Unreachable(f"{service} connection failed: {_failure_reason(error)}") from None
    duration_ms = (time.perf_counter() - started) * 1000.0
    return Reply(raw.status, raw.headers, raw.body, duration_ms, service)


def basic_auth(user: str, password: str) -> str:
    """The value of an HTTP Basic Authorization header for user:password."""
    token = base64.b64encode(f"{user}:{password}".encode("utf-8")).decode("ascii")
    return f"Basic {token}"
