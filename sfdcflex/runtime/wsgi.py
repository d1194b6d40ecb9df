"""The same App as a WSGI callable (PEP 3333), for gunicorn, waitress or uWSGI in production."""
from __future__ import annotations

import threading
from urllib.parse import quote

from .errors import BadRequest, HTTPError
from .response import Reply, reason
from .app import App, Request


class _Answer:
    """Sends one request's reply exactly once: the function's, or the watchdog's early 504.

    The function runs on the host server's worker thread (waitress's, gunicorn's), so at the
    time limit the watchdog answers from its own thread through PEP 3333's `write` callable
    while the function goes on; whichever reply comes first is sent, the other is dropped.
    """

    def __init__(self, start_response) -> None:
        self._start_response = start_response
        self._lock = threading.Lock()
        self._sent = False

    def early(self, reply: Reply) -> None:
        with self._lock:
            if self._sent:
                return
            self._sent = True
            write = self._start_response(*_status_and_headers(reply))
            write(reply.body)

    def final(self, reply: Reply) -> list[bytes]:
        with self._lock:
            if self._sent:
                return []
            self._sent = True
        self._start_response(*_status_and_headers(reply))
        return [reply.body]


def _status_and_headers(reply: Reply) -> tuple[str, list[tuple[str, str]]]:
    return (f"{reply.status} {reason(reply.status)}",
            [*reply.headers, ("Content-Length", str(len(reply.body)))])


class WSGIApp:
    """Adapts `App.dispatch` to PEP 3333, running each function on the host's worker thread."""

    def __init__(self, app: App) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response):
        answer = _Answer(start_response)
        try:
            request = self._request(environ)
        except HTTPError as exc:
            origin = environ.get("HTTP_ORIGIN")
            return answer.final(self.app.refusal(exc, [("Origin", origin)] if origin else []))
        return answer.final(self.app.dispatch(request, answer.early))

    def _request(self, environ: dict) -> Request:
        raw_length = environ.get("CONTENT_LENGTH") or "0"
        if not (raw_length.isascii() and raw_length.isdigit() and len(raw_length) <= 18):
            raise BadRequest("Content-Length must be 1 to 18 ASCII digits", code="bad_content_length")
        length = int(raw_length)
        path = _raw_path(environ)
        method = environ["REQUEST_METHOD"]
        # A body too large, or one no route would read (404, 405), is refused from the head,
        # as the built-in server refuses it: not a byte of it is read.
        refused = self.app.head_refusal(method, path, length) if length else None
        if refused is not None:
            raise refused
        body = environ["wsgi.input"].read(length) if length else b""
        query = environ.get("QUERY_STRING", "")
        headers = [(key[5:].replace("_", "-").title(), value)
                   for key, value in environ.items() if key.startswith("HTTP_")]
        if environ.get("CONTENT_TYPE"):
            headers.append(("Content-Type", environ["CONTENT_TYPE"]))
        # A tuple, as the built-in server gives: `event` is then built from what it worked out
        # for the same headers before (runtime/event.py), found by their value.
        return Request(method, path + ("?" + query if query else ""),
                       tuple(headers), body, environ.get("REMOTE_ADDR", ""))


def _raw_path(environ: dict) -> str:
    """The request path as the client sent it, percent-encoded, as the built-in server sees it.

    PEP 3333's PATH_INFO is already percent-decoded: "/a%3Fb" arrives as "/a?b" and "/a%2Fb"
    as "/a/b", which would route to another function than the same URL on the built-in server.
    So the raw request URI is used where the server gives it (gunicorn's RAW_URI, uWSGI's
    REQUEST_URI); otherwise PATH_INFO is encoded again, which keeps "?", "#" and "%" from
    changing its meaning but cannot tell an encoded "/" from a plain one.
    """
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
    if raw.startswith("/"):
        return raw.split("?", 1)[0]
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    # PEP 3333: PATH_INFO holds the raw bytes as latin-1 text.
    return quote(path.encode("latin-1"), safe="/!$&'()*+,;=:@-._~") or "/"
