"""GET /metrics for Prometheus: the registry's text, for the addresses or the bearer token allowed.

A built-in route like /healthz (runtime/app.py, Builtin): answered on the calling thread, outside
the concurrency cap, so a server whose every slot is busy still reports it; it reads counters
and calls nothing upstream.

Who may read it: a request carrying `Authorization: Bearer <METRICS_TOKEN>` (when set), or one
from an address in METRICS_ALLOW (default loopback) that did not come through a proxy. A reverse
proxy on the same machine connects from loopback for every client it forwards; the proxy says
so in `X-Forwarded-For` or `Forwarded` (RFC 7239), and then the address proves nothing.
"""
from __future__ import annotations

import hmac
import ipaddress
from typing import Sequence

from .runtime.app import Request
from .runtime.errors import Forbidden, HTTPError
from .runtime.metrics import CONTENT_TYPE, Registry
from .runtime.response import Reply

PATH = "/metrics"
_PROXY_HEADERS = ("x-forwarded-for", "forwarded")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class MetricsUnauthorized(HTTPError):
    """A bearer token was sent and is not METRICS_TOKEN (RFC 6750 section 3: 401 invalid_token)."""

    status, code = 401, "metrics_unauthorized"


class MetricsEndpoint:
    """The /metrics answer: 200 with the exposition, 401 for a wrong token, 403 for anyone else."""

    def __init__(self, registry: Registry, allowed: Sequence[Network], token: str | None = None) -> None:
        self.registry = registry
        self.allowed = tuple(allowed)
        self._token = token.encode("utf-8") if token else None

    def __call__(self, request: Request) -> Reply:
        self.check_access(request)
        # Never cached: a proxy must not answer for a later scrape.
        return Reply(200, [("Content-Type", CONTENT_TYPE), ("Cache-Control", "no-store")],
                     self.registry.exposition())

    def check_access(self, request: Request) -> None:
        """Return when the request may read the metrics; raise the answer when it may not."""
        authorization = next((v for k, v in request.headers if k.lower() == "authorization"), None)
        if authorization is not None and self._token is not None:
            scheme, _, given = authorization.partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode("utf-8"), self._token):
                return
            raise MetricsUnauthorized("the bearer token is not the one METRICS_TOKEN sets",
                                      headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        proxied = any(k.lower() in _PROXY_HEADERS for k, _ in request.headers)
        if not proxied and self._address_allowed(request.remote_addr):
            return
        raise Forbidden("/metrics is not open to this address; see METRICS_ALLOW and METRICS_TOKEN "
                        "in the README", code="metrics_forbidden")

    def _address_allowed(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False   # a Unix socket, or a WSGI host that gave none
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped   # a dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d
        return any(ip in network for network in self.allowed)
