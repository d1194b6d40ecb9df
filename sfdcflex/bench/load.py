"""A keep-alive HTTP load generator from the standard library: threads and http.client.

Each thread holds one persistent connection and sends requests back to back until the time
runs out or its share of the request budget is spent; every request's latency is kept, so
the median and the 99th percentile come from all of them, not from a sample.
"""
from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Callable

# What one request sends: method, path, body, headers.
Request = tuple[str, str, bytes, dict[str, str]]


@dataclass(frozen=True)
class LoadResult:
    """One run: requests answered 200, the others (errors), wall time and latencies in ms."""

    ok: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of an ascending list (0.0 when it is empty)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, int(round(fraction * len(sorted_values))) - 1))
    return sorted_values[rank]


@dataclass
class _Tally:
    ok: int = 0
    errors: int = 0
    finished_at: float = 0.0


def _worker(host: str, port: int, next_request: Callable[[], Request], budget: int,
            start: threading.Barrier, clock: dict[str, float], tally: _Tally,
            latencies: list[float]) -> None:
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.connect()  # connecting is not part of what is measured
    except OSError:
        pass
    start.wait()
    deadline = clock["deadline"]
    sent = 0
    while sent < budget and time.perf_counter() < deadline:
        method, path, body, headers = next_request()
        sent += 1
        began = time.perf_counter()
        try:
            connection.request(method, path, body, headers)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            tally.errors += 1
            connection.close()  # http.client reconnects on the next request
            time.sleep(0.001)   # a refused port must not become a busy loop
            continue
        latencies.append((time.perf_counter() - began) * 1000.0)
        if response.status == 200:
            tally.ok += 1
        else:
            tally.errors += 1
    tally.finished_at = time.perf_counter()
    connection.close()


def run_load(url: str, next_request: Callable[[], Request], *, connections: int,
             duration: float, max_requests: int = 1_000_000) -> LoadResult:
    """Send requests over `connections` keep-alive connections for `duration` seconds at most."""
    parts = urllib.parse.urlsplit(url)
    budget = max(1, -(-max_requests // connections))
    clock: dict[str, float] = {}
    tallies = [_Tally() for _ in range(connections)]
    latencies: list[list[float]] = [[] for _ in range(connections)]

    def release() -> None:  # runs once, in the last thread to reach the barrier
        clock["started"] = time.perf_counter()
        clock["deadline"] = clock["started"] + duration

    start = threading.Barrier(connections, action=release)
    threads = [threading.Thread(target=_worker, daemon=True, name=f"load-{i}",
                                args=(parts.hostname, parts.port, next_request, budget, start,
                                      clock, tallies[i], latencies[i]))
               for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration + 30.0)  # a request's own timeout is 10 s; this is the outer bound
    finished = max((t.finished_at for t in tallies), default=0.0)
    everything = sorted(value for per_thread in latencies for value in per_thread)
    return LoadResult(ok=sum(t.ok for t in tallies), errors=sum(t.errors for t in tallies),
                      seconds=max(0.0, finished - clock.get("started", finished)),
                      p50_ms=percentile(everything, 0.50), p99_ms=percentile(everything, 0.99))
