"""The one place that makes HTTP calls to outside services (Salesforce, Twilio IAM, Twilio Sync).

Every client is given an opener (urllib's, or the `LazyOpener` below), so tests and the demo point the
same code at local stand-ins. `call` returns every HTTP answer, whatever its status, as a
`Reply`; each client maps statuses to its own errors. Network failures become `BadGateway`
with a message that names the service and never the URL.
"""
from __future__ import annotations

import base64
import ipaddress
import json
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    import urllib.request

from ..runtime.errors import BadGateway, ConfigError

MAX_BODY_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Reply:
    """One HTTP answer: status, lower-cased headers, the body bytes and how long it took."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    duration_ms: float
    service: str = "upstream"

    def json(self) -> object:
        """The body parsed as JSON; an HTML error page or garbage is a BadGateway."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise BadGateway(f"{self.service} answered {self.status} with a body that is not JSON")


class LazyOpener:
    """urllib's opener, built on first use.

    Importing urllib.request brings http.client, email and ssl (which loads the TLS library):
    a cost that start-up need not pay, since only the first call out needs it.
    """

    def __init__(self) -> None:
        self._opener: urllib.request.OpenerDirector | None = None
        self._lock = threading.Lock()

    def open(self, request, timeout: float):
        if self._opener is None:
            with self._lock:
                if self._opener is None:
                    self._opener = _build_opener()
        return self._opener.open(request, timeout=timeout)


def is_loopback_host(host: str) -> bool:
    """Whether a URL host names this machine (localhost, 127.0.0.0/8 or ::1)."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _build_opener() -> urllib.request.OpenerDirector:
    import urllib.request

    class NoRedirects(urllib.request.HTTPRedirectHandler):
        """Return 3xx answers as they are: following one would resend Authorization elsewhere."""

        def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102 - urllib hook
            return None

    return urllib.request.build_opener(NoRedirects())


def default_opener() -> LazyOpener:
    """An opener that never follows redirects (proxies from the environment still apply)."""
    return LazyOpener()


def check_upstream_url(name: str, url: str) -> str:
    """Return `url` without a trailing slash, or raise ConfigError unless it is https (http on loopback)."""
    parts = urllib.parse.urlsplit(url.strip())
    host = parts.hostname or ""
    if not host or parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(f"{name} must be a plain URL like https://host[/path], "
                          "without user, query or fragment")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(host)):
        return url.strip().rstrip("/")
    raise ConfigError(f"{name} must use https:// (http:// is allowed only for localhost / 127.0.0.1 / ::1)")


def _encode_body(headers: dict[str, str], form: Mapping[str, str] | None, json_body: object) -> bytes | None:
    if form is not None:
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        return urllib.parse.urlencode(form).encode("ascii")
    if json_body is not None:
        headers.setdefault("Content-Type", "application/json")
        return json.dumps(json_body).encode("utf-8")
    return None


def _failure_reason(error: BaseException) -> str:
    """Name a network failure in a few words; the exception text may hold a host or URL, so it is not used."""
    import http.client
    import ssl
    import urllib.error
    if isinstance(error, urllib.error.URLError) and isinstance(error.reason, BaseException):
        error = error.reason
    if isinstance(error, (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError)):
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


def _is_timeout(error: BaseException) -> bool:
    import urllib.error
    if isinstance(error, urllib.error.URLError):
        error = error.reason if isinstance(error.reason, BaseException) else error
    return isinstance(error, (TimeoutError, socket.timeout))


def _read_bounded(response, service: str) -> bytes:
    body = response.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise BadGateway(f"{service} answered with more than {MAX_BODY_BYTES // (1024 * 1024)} MiB")
    return body


def call(opener: urllib.request.OpenerDirector, service: str, method: str, url: str, *,
         headers: Mapping[str, str] | None = None, form: Mapping[str, str] | None = None,
         json_body: object = None, timeout: float = 8.0) -> Reply:
    """Send one request and return its answer whatever the status; network failures raise BadGateway."""
    import http.client  # loaded by the opener's first use anyway; a dictionary look-up after that
    import urllib.error
    import urllib.request
    all_headers = {"Accept": "application/json", **(headers or {})}
    data = _encode_body(all_headers, form, json_body)
    request = urllib.request.Request(url, data=data, headers=all_headers, method=method)
    started = time.perf_counter()
    try:
        try:
            response = opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as answer:
            # urllib raises for 4xx/5xx, but for us they are answers the client maps.
            response = answer
        with response:
            body = _read_bounded(response, service)
            status = response.status
            reply_headers = _lower_headers(response.headers)
    except (OSError, http.client.HTTPException) as error:
        if _is_timeout(error):
            raise BadGateway(f"{service} did not answer in {timeout:g} s") from None
        raise BadGateway(f"{service} connection failed: {_failure_reason(error)}") from None
    duration_ms = (time.perf_counter() - started) * 1000.0
    return Reply(status, reply_headers, body, duration_ms, service)


def _lower_headers(message) -> dict[str, str]:
    merged: dict[str, str] = {}
    for name, value in (message.items() if message is not None else ()):
        key = name.lower()
        merged[key] = f"{merged[key]}, {value}" if key in merged else value
    return merged


def basic_auth(user: str, password: str) -> str:
    """The value of an HTTP Basic Authorization header for user:password."""
    token = base64.b64encode(f"{user}:{password}".encode("utf-8")).decode("ascii")
    return f"Basic {token}"
