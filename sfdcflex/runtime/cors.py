"""CORS: which browser origins may read the runtime's answers, decided in one place.

A browser sends `Origin: scheme://host[:port]` (RFC 6454 §7), never a path, and reads an answer
only if `Access-Control-Allow-Origin` names that origin exactly. So allowed URLs are reduced to
their origins (a self-hosted Flex at https://flex.example.com/agent is the origin
https://flex.example.com), and hosts compare without regard to case (RFC 3986 §3.2.2).
"""
from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
PREFLIGHT_HEADERS = (("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
                     ("Access-Control-Allow-Headers", "Content-Type, Authorization, X-Twilio-Signature"),
                     ("Access-Control-Max-Age", "600"))


def origin_of(url: str) -> str | None:
    """The origin of `url` as a browser serializes it (lower-case scheme and host, no default
    port, no path), or None when `url` has no http(s) origin."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except (ValueError, AttributeError):
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or parts.username is not None:
        return None
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" if port in (None, _DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


class CorsPolicy:
    """The origins allowed to call from a browser, and the headers that tell the browser so."""

    def __init__(self, allowed: tuple[str, ...] = ()) -> None:
        self.allowed = frozenset(filter(None, (origin_of(url) for url in allowed)))
        # A panel sends the same Origin on every request: its answer is worked out once (a URL
        # parse, cold on a request every few seconds); the last MEMO_ORIGINS are kept, of up to
        # MEMO_ORIGIN_CHARS (a host name is at most 253).
        self._for_origin = lru_cache(maxsize=MEMO_ORIGINS)(self._headers_for)

    def allows(self, origin: str | None) -> bool:
        return bool(origin) and origin_of(origin) in self.allowed

    def headers(self, headers: list[tuple[str, str]] | None) -> tuple[tuple[str, str], ...]:
        """CORS headers for an answer to a request with these headers.

        `None` means the request was refused before its headers could be read (414, 431): the
        Origin is unknown, so name the one allowed origin, if there is exactly one. A browser on
        that origin then sees the status; any other origin still gets nothing, because the
        browser compares the header with its own origin.
        """
        if headers is None:
            origin = next(iter(self.allowed)) if len(self.allowed) == 1 else None
        else:
            origin = None
            for name, value in headers:
                if len(name) == 6 and name.lower() == "origin":
                    origin = value
                    break
        if origin is not None and len(origin) > MEMO_ORIGIN_CHARS:
            return self._headers_for(origin)
        return self._for_origin(origin)

    def _headers_for(self, origin: str | None) -> tuple[tuple[str, str], ...]:
        vary = (("Vary", "Origin"),)   # caches must keep answers for different Origins apart
        if not self.allows(origin):
            return vary
        return vary + (("Access-Control-Allow-Origin", origin.strip()),
                       ("Access-Control-Expose-Headers", "Server-Timing"))


MEMO_ORIGINS = 64
MEMO_ORIGIN_CHARS = 300
