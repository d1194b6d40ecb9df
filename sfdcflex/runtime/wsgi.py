"""The same App as a WSGI callable (PEP 3333), for gunicorn, waitress or uWSGI in production."""
from __future__ import annotations

from .errors import BadRequest, ConfigError, HTTPError, PayloadTooLarge
from .response import reason
from .app import App, Request, error_reply


class WSGIApp:
    """Adapts `App.dispatch` to PEP 3333."""

    def __init__(self, app: App) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response):
        try:
            request = self._request(environ)
        except HTTPError as exc:
            reply = error_reply(exc)
        else:
            reply = self.app.dispatch(request)
        start_response(f"{reply.status} {reason(reply.status)}",
                       [*reply.headers, ("Content-Length", str(len(reply.body)))])
        return [reply.body]

    def _request(self, environ: dict) -> Request:
        raw_length = environ.get("CONTENT_LENGTH") or "0"
        if not (raw_length.isascii() and raw_length.isdigit() and len(raw_length) <= 18):
            raise BadRequest("Content-Length must be 1 to 18 ASCII digits", code="bad_content_length")
        length = int(raw_length)
        # PEP 3333: PATH_INFO is already percent-decoded and carried as latin-1 text.
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        path = path.encode("latin-1").decode("utf-8", "replace") or "/"
        limit = self.app.max_body_for(path)
        if length > limit:  # from Content-Length, before a byte of the body is read
            raise PayloadTooLarge(f"request bodies are limited to {limit} bytes")
        body = environ["wsgi.input"].read(length) if length else b""
        query = environ.get("QUERY_STRING", "")
        headers = [(key[5:].replace("_", "-").title(), value)
                   for key, value in environ.items() if key.startswith("HTTP_")]
        if environ.get("CONTENT_TYPE"):
            headers.append(("Content-Type", environ["CONTENT_TYPE"]))
        return Request(environ["REQUEST_METHOD"], path + ("?" + query if query else ""),
                       headers, body, environ.get("REMOTE_ADDR", ""))
