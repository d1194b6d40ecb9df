"""The integration's instruments, on one registry that GET /metrics exposes (metrics_endpoint.py).

`Metrics` is made once by the composition root (assembly.build_app, or cli.main so that it can
watch the server too) and hands out what each part counts with: the runtime's request meter,
a sender that meters upstream calls around the clients' transport, the Flex token check
counts, the audit that counts links. What other objects already count (the answer cache's
hits, the transport's connections, the server's connections and workers) is read only when
/metrics is: readings, nothing on a request's path.

A `Tap` (the demo's link trace, sfdcflex/demo/trace.py) may be told of the same events; without
one, nothing is spent on it.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol

from . import __version__
from .audit import LinkAudit
from .clients.errors import TokenMissing, TokenRefused
from .runtime.app import Request, RequestObserver
from .runtime.metrics import Registry, RequestMeter, process_families
from .runtime.response import Reply

if TYPE_CHECKING:
    from .cache import LRUCache
    from .clients.iam import FlexAgent, FlexTokenValidator
    from .clients.pool import RawReply
    from .clients.transport import Sender
    from .runtime.app import App
    from .runtime.http.server import FunctionsServer

SERVICES = ("salesforce", "iam", "sync")
OUTCOMES = ("2xx", "3xx", "4xx", "5xx", "unreachable")


class Tap(Protocol):
    """What a listener besides the counters is told (the demo's link trace)."""

    def request(self, request: Request | None, path: str, reply: Reply, seconds: float) -> None: ...

    def upstream(self, service: str, method: str, url: str, body: bytes | None,
                 reply: RawReply | None, seconds: float) -> None: ...

    def link_event(self, event: str, identity: str, sfdc_user: str) -> None: ...


class Metrics:
    """Every instrument of one process and the registry they are exposed from."""

    def __init__(self, *, tap: Tap | None = None, instance: str | None = None,
                 version: str = __version__) -> None:
        self.registry = Registry()
        self.tap = tap
        process_families(self.registry, version)
        self.audit = LinkAudit(self.registry, instance=instance,
                               listener=tap.link_event if tap is not None else None)
        checks = self.registry.counter("sfdcflex_flex_token_checks_total", "Flex token checks by "
                                       "where the answer came from: memory (no IAM call) or iam.",
                                       ("source",))
        self.flex_from_memory, self.flex_asked = checks.labels("memory"), checks.labels("iam")
        refusals = self.registry.counter("sfdcflex_flex_token_refusals_total", "Flex tokens refused "
                                         "(missing, not valid, expired) by where the refusal came "
                                         "from: memory (no IAM call) or iam.", ("source",))
        self.flex_refused_by_memory, self.flex_refused_by_iam = refusals.labels("memory"), refusals.labels("iam")
        self.upstream_calls = self.registry.counter(
            "sfdcflex_upstream_calls_total", "Calls to Salesforce, Twilio IAM and Twilio Sync by "
            "service and outcome (status class, or unreachable).", ("service", "outcome"))
        self.upstream_seconds = self.registry.histogram(
            "sfdcflex_upstream_call_duration_seconds", "Time of one upstream call, by service.",
            ("service",))

    def request_observer(self, functions: dict[str, str]) -> RequestObserver:
        """What the App calls with every answer: `functions` maps each path to its label."""
        observe = RequestMeter(self.registry, functions).observe
        tap = self.tap
        if tap is None:
            return observe

        def observe_and_tell(request: Request | None, path: str, reply: Reply, seconds: float) -> None:
            observe(request, path, reply, seconds)
            tap.request(request, path, reply, seconds)
        return observe_and_tell

    def sender(self, transport: Sender, bases: dict[str, str]) -> MeteredSender:
        """`transport` with every call counted and timed; `bases` maps a base URL to its service."""
        return MeteredSender(transport, bases, self)

    def flex_checks(self, validator: FlexTokenValidator) -> CountedFlexChecks:
        return CountedFlexChecks(validator, self)

    def watch_cache(self, cache: LRUCache) -> None:
        """The answer cache's own counts (cards and Salesforce user info), read at scrape time."""
        def lookups():
            stats = cache.stats
            return [(("answers", "hit"), stats.hits), (("answers", "miss"), stats.misses)]
        self.registry.reading("sfdcflex_cache_lookups_total", "Answer cache look-ups by kind and "
                              "result (hit, miss).", "counter", lookups, ("kind", "result"))
        self.registry.reading("sfdcflex_cache_entries", "Entries in the answer cache.", "gauge",
                              lambda: [((), len(cache))])

    def watch_app(self, app: App) -> None:
        """Invocations in flight against the concurrency cap."""
        self.registry.reading("sfdcflex_invocations_in_flight", "Function invocations holding a "
                              "concurrency slot now.", "gauge", lambda: [((), app.invocations_in_flight())])
        self.registry.reading("sfdcflex_invocations_max", "The concurrency cap (--max-concurrency); "
                              "past it the answer is 429.", "gauge", lambda: [((), app.limits.max_concurrency)])

    def watch_server(self, server: FunctionsServer) -> None:
        """Open connections and busy workers against their caps (the runtime's own server only:
        under a WSGI host these are the host's)."""
        connections, workers, limits = server.connections, server.workers, server.limits
        gauges = (
            ("sfdcflex_connections_open", "Client connections open now.",
             lambda: len(connections.open_connections)),
            ("sfdcflex_connections_max", "The connection cap (--max-connections); past it the "
             "server stops accepting.", lambda: limits.max_connections),
            ("sfdcflex_workers_busy", "Worker threads running a request now.",
             lambda: max(0, workers.started - workers.idle)),
            ("sfdcflex_workers_max", "The worker thread cap (--threads).", lambda: workers.count),
        )
        for name, text, read in gauges:
            self.registry.reading(name, text, "gauge", lambda read=read: [((), read())])


class MeteredSender:
    """A transport (the clients' Sender) whose calls are counted by service and outcome and timed.

    Connections opened and reused are the transport's own counts (pool.Transport), read at
    scrape time: each call either reuses an idle connection or opens one, and a retry after a
    kept-alive connection died under it opens another.
    """

    def __init__(self, inner: Sender, bases: dict[str, str], metrics: Metrics) -> None:
        self.inner = inner
        # Longest base first: a base that is a prefix of another must not take its calls.
        self._bases = sorted(bases.items(), key=lambda item: -len(item[0]))
        calls, seconds = metrics.upstream_calls, metrics.upstream_seconds
        self._outcomes = {service: {outcome: calls.labels(service, outcome) for outcome in OUTCOMES}
                          for service in SERVICES + ("other",)}
        self._seconds = {service: seconds.labels(service) for service in SERVICES + ("other",)}
        self._tap = metrics.tap
        opened = getattr(inner, "connections_opened", None)
        if opened is not None:  # a pool.Transport (tests and the benchmark may send otherwise)
            metrics.registry.reading(
                "sfdcflex_upstream_connections_total", "Upstream connections by how a call got "
                "one: opened (TCP and TLS handshakes) or reused (kept alive).", "counter",
                lambda: [(("opened",), inner.connections_opened),
                         (("reused",), max(0, self.calls() + inner.retries - inner.connections_opened))],
                ("how",))

    def calls(self) -> int:
        """Every call sent so far, whatever its outcome."""
        return sum(child.value for outcomes in self._outcomes.values() for child in outcomes.values())

    def service_of(self, url: str) -> str:
        for base, service in self._bases:
            if url.startswith(base):
                return service
        return "other"

    def send(self, method: str, url: str, headers: dict[str, str], body: bytes | None, *,
             timeout: float, idempotent: bool) -> RawReply:
        service = self.service_of(url)
        started = time.perf_counter()
        raw = None
        try:
            raw = self.inner.send(method, url, headers, body, timeout=timeout, idempotent=idempotent)
        finally:
            seconds = time.perf_counter() - started
            outcome = f"{raw.status // 100}xx" if raw is not None and 100 <= raw.status < 600 else "unreachable"
            self._outcomes[service].get(outcome, self._outcomes[service]["unreachable"]).inc()
            self._seconds[service].observe(seconds)
            if self._tap is not None:
                self._tap.upstream(service, method, url, body, raw, seconds)
        return raw


class CountedFlexChecks:
    """The Flex token validator, counting which checks memory answered and which asked IAM."""

    def __init__(self, validator: FlexTokenValidator, metrics: Metrics) -> None:
        self.validator = validator
        self._memory, self._asked = metrics.flex_from_memory, metrics.flex_asked
        self._refused_by_memory, self._refused_by_iam = metrics.flex_refused_by_memory, metrics.flex_refused_by_iam
        self._remembered = validator.remembered

    def remembered(self, token: object) -> FlexAgent | None:
        """On every request's path: the count is added inline, under the counter's own lock."""
        try:
            agent = self._remembered(token)
        except (TokenMissing, TokenRefused):   # missing, overlong, or refused lately
            self._refused_by_memory.inc()
            raise
        if agent is not None:
            memory = self._memory
            with memory.lock:
                memory.value += 1
        return agent

    def validate_with_source(self, token: object, client: str = "") -> tuple[FlexAgent, bool]:
        try:
            agent, cached = self.validator.validate_with_source(token, client)
        except (TokenMissing, TokenRefused):
            self._refused_by_iam.inc()
            raise
        (self._memory if cached else self._asked).inc()
        return agent, cached

    def validate(self, token: object, client: str = "") -> FlexAgent:
        return self.validate_with_source(token, client)[0]
