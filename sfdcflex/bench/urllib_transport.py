"""The transport as it was before pooling, kept only so the benchmark can measure both in one run.

urllib opens a new connection per call and sends `Connection: close`; on Python 3.11 its HTTPS
handler has no TLS context of its own, so each connection makes one (loading the CA store).
This sender does the same: one opener per call and, for https, one fresh TLS context.
"""
from __future__ import annotations

import ssl
import urllib.error
import urllib.request

from ..clients.pool import MAX_BODY_BYTES, BodyTooLarge, RawReply


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102 - urllib hook
        return None


class UrllibTransport:
    """A `Sender` with the old behaviour: a fresh connection and TLS context for every call."""

    def __init__(self, ca_file: str | None = None) -> None:
        self.ca_file = ca_file

    def send(self, method: str, url: str, headers: dict[str, str], body: bytes | None, *,
             timeout: float, idempotent: bool) -> RawReply:
        handlers: list[urllib.request.BaseHandler] = [_NoRedirects()]
        if url.startswith("https:"):
            # What urllib's handler did per connection: load the system CA store (the test CA on top).
            context = ssl.create_default_context()
            if self.ca_file:
                context.load_verify_locations(self.ca_file)
            handlers.append(urllib.request.HTTPSHandler(context=context))
        opener = urllib.request.build_opener(*handlers)
        request = urllib.request.Request(url, data=body, headers=headers, method=method)
        try:
            response = opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as answer:
            response = answer
        with response:
            payload = response.read(MAX_BODY_BYTES + 1)
            if len(payload) > MAX_BODY_BYTES:
                raise BodyTooLarge()
            headers_out = {name.lower(): value for name, value in response.headers.items()}
            return RawReply(response.status, headers_out, payload)
