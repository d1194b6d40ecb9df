"""Counters, histograms and gauges, and their Prometheus text exposition (format version 0.0.4).

Made for a hot path: a labelled child is made once, when the instrument is set up, and a request
then pays a lock and an integer add (a histogram also a `bisect` for its bucket); label text is
built only when /metrics is read. Nothing here is global: whoever builds the app makes one
`Registry` and hands its instruments to the parts that count.

The format (https://prometheus.io/docs/instrumenting/exposition_formats/): for each family a
`# HELP` and a `# TYPE` line, then its samples `name{label="value"} number`; label values escape
backslash, double quote and newline; a histogram's `_bucket` samples are cumulative, their `le`
bounds ascending and the last one `+Inf`, followed by `_sum` and `_count`.
"""
from __future__ import annotations

import math
import re
import threading
import time
from bisect import bisect_left
from typing import Callable, Iterable, Sequence

from .response import Reply

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Prometheus's client libraries' default buckets, in seconds: 5 ms to 10 s, the runtime's time limit.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_LABEL_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})
_HELP_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n"})

Sample = tuple[str, str, float]  # name suffix ("", "_bucket", ...), rendered labels, value


def label_text(names: Sequence[str], values: Sequence[str]) -> str:
    """`{a="x",b="y"}` (or "" with no labels), values escaped as the format says."""
    if not names:
        return ""
    pairs = ",".join(f'{n}="{str(v).translate(_LABEL_ESCAPES)}"' for n, v in zip(names, values))
    return "{" + pairs + "}"


def number_text(value: float) -> str:
    """A sample value: integers without a point, +Inf / -Inf / NaN as the format spells them."""
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 2**53):
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class _Family:
    """A metric family: a name, its type and help, and the samples `collect` gives."""

    kind = "untyped"

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        if not _NAME.match(name) or any(not _LABEL.match(label) or label.startswith("__") for label in labels):
            raise ValueError(f"not a valid metric or label name: {name} {tuple(labels)}")
        self.name, self.help, self.label_names = name, help, tuple(labels)

    def collect(self) -> Iterable[Sample]:
        raise NotImplementedError


class CounterValue:
    """One labelled counter: `inc` adds under a lock. CPython 3.11's interpreter happens not to
    switch threads inside `+=` on an attribute, but nothing promises it (a free-threaded build,
    another interpreter), and an uncontended lock costs about 0.1 µs."""

    __slots__ = ("value", "lock")

    def __init__(self) -> None:
        self.value = 0
        self.lock = threading.Lock()

    def inc(self, amount: int = 1) -> None:
        with self.lock:
            self.value += amount


class Counter(_Family):
    """A family of counters that only go up; `labels(...)` gives one child, made once."""

    kind = "counter"

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help, labels)
        self._children: dict[tuple[str, ...], CounterValue] = {}
        self._lock = threading.Lock()
        if not labels:
            self.labels()  # a family without labels has its one sample from the start

    def labels(self, *values: str) -> CounterValue:
        if len(values) != len(self.label_names):
            raise ValueError(f"{self.name} takes the labels {self.label_names}")
        with self._lock:
            return self._children.setdefault(tuple(values), CounterValue())

    def inc(self, amount: int = 1) -> None:
        """Add to the counter of a family without labels."""
        self._children[()].inc(amount)

    def collect(self) -> Iterable[Sample]:
        with self._lock:
            children = list(self._children.items())
        for values, child in children:
            yield "", label_text(self.label_names, values), child.value


class HistogramValue:
    """One labelled histogram: counts per bucket (not cumulative), their sum and count."""

    __slots__ = ("bounds", "counts", "sum", "lock")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is above every bound: +Inf
        self.sum = 0.0
        self.lock = threading.Lock()

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le, "less or equal").
        index = bisect_left(self.bounds, value)
        with self.lock:
            self.counts[index] += 1
            self.sum += value

    def snapshot(self) -> tuple[list[int], float]:
        with self.lock:
            return list(self.counts), self.sum


class Histogram(_Family):
    """A family of histograms with the same bucket bounds."""

    kind = "histogram"

    def __init__(self, name: str, help: str, labels: Sequence[str] = (),
                 buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        if "le" in labels:
            raise ValueError("a histogram's own label is le")
        super().__init__(name, help, labels)
        self.bounds = tuple(sorted(float(b) for b in buckets if not math.isinf(b)))
        self._children: dict[tuple[str, ...], HistogramValue] = {}
        self._lock = threading.Lock()

    def labels(self, *values: str) -> HistogramValue:
        if len(values) != len(self.label_names):
            raise ValueError(f"{self.name} takes the labels {self.label_names}")
        with self._lock:
            return self._children.setdefault(tuple(values), HistogramValue(self.bounds))

    def collect(self) -> Iterable[Sample]:
        with self._lock:
            children = list(self._children.items())
        for values, child in children:
            yield from histogram_samples(self.label_names, values, self.bounds, *child.snapshot())


def histogram_samples(names: tuple[str, ...], values: tuple[str, ...], bounds: tuple[float, ...],
                      counts: list[int], total: float) -> Iterable[Sample]:
    """One histogram's samples from its per-bucket counts: `_bucket` cumulative, `le` ascending and
    ending in +Inf, then `_sum` and `_count`."""
    running = 0
    for bound, count in zip([number_text(b) for b in bounds] + ["+Inf"], counts):
        running += count
        yield "_bucket", label_text(names + ("le",), values + (bound,)), running
    labels = label_text(names, values)
    yield "_sum", labels, total
    yield "_count", labels, running


class Reading(_Family):
    """A family whose samples are read when /metrics is, from a function: a gauge of something the
    program already knows (open connections), or a counter another object already keeps."""

    def __init__(self, name: str, help: str, kind: str, read: Callable[[], Iterable[tuple[Sequence[str], float]]],
                 labels: Sequence[str] = ()) -> None:
        if kind not in ("gauge", "counter"):
            raise ValueError("a reading is a gauge or a counter")
        super().__init__(name, help, labels)
        self.kind, self._read = kind, read

    def collect(self) -> Iterable[Sample]:
        for values, value in self._read():
            yield "", label_text(self.label_names, values), value


class Registry:
    """The families one process exposes, in the order they were added; names are unique."""

    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}
        self._lock = threading.Lock()

    def add(self, family: _Family) -> _Family:
        with self._lock:
            if family.name in self._families:
                raise ValueError(f"{family.name} is registered already")
            self._families[family.name] = family
        return family

    def counter(self, name: str, help: str, labels: Sequence[str] = ()) -> Counter:
        return self.add(Counter(name, help, labels))

    def histogram(self, name: str, help: str, labels: Sequence[str] = (),
                  buckets: Sequence[float] = LATENCY_BUCKETS) -> Histogram:
        return self.add(Histogram(name, help, labels, buckets))

    def reading(self, name: str, help: str, kind: str, read: Callable[[], Iterable[tuple[Sequence[str], float]]],
                labels: Sequence[str] = ()) -> Reading:
        return self.add(Reading(name, help, kind, read, labels))

    def exposition(self) -> bytes:
        """Every family in the text format: HELP and TYPE first, then its samples."""
        with self._lock:
            families = list(self._families.values())
        lines = []
        for family in families:
            lines.append(f"# HELP {family.name} {family.help.translate(_HELP_ESCAPES)}")
            lines.append(f"# TYPE {family.name} {family.kind}")
            lines.extend(f"{family.name}{suffix}{labels} {number_text(value)}"
                         for suffix, labels, value in family.collect())
        return ("\n".join(lines) + "\n").encode("utf-8")


class _RouteCounts:
    """One route's answers by exact status (index = status; statuses are 100-999, response.py
    checks, as twilio-run takes them) and its durations per bucket, under one lock: a request
    takes one lock, not three."""

    __slots__ = ("lock", "by_status", "buckets", "seconds")

    def __init__(self, buckets: int) -> None:
        self.lock = threading.Lock()
        self.by_status = [0] * 1000
        self.buckets = [0] * (buckets + 1)
        self.seconds = 0.0

    def snapshot(self) -> tuple[list[int], list[int], float]:
        with self.lock:
            return list(self.by_status), list(self.buckets), self.seconds


OVERLOAD_STATUSES = (429, 503, 504)


class _Durations(_Family):
    """The request-duration histogram, read from the routes' counts when /metrics is."""

    kind = "histogram"

    def __init__(self, name: str, help: str, meter: RequestMeter) -> None:
        super().__init__(name, help, ("function",))
        self._meter = meter

    def collect(self) -> Iterable[Sample]:
        for name, counts in self._meter.routes.items():
            _, buckets, seconds = counts.snapshot()
            yield from histogram_samples(self.label_names, (name,), LATENCY_BUCKETS, buckets, seconds)


class RequestMeter:
    """Requests by function and status class, their latency, and overload answers (429, 503, 504).

    `observe` is on every request's path, so it does the least it can: a dictionary look-up of
    the path, a bisect for the bucket, and two list adds and a float add under one lock (some
    0.5 µs on this project's machine); the classes and the overload answers are summed from the
    exact statuses when /metrics is read. Paths that name no route share the label
    `function="other"`, so a scan of random URLs cannot grow the exposition.
    """

    def __init__(self, registry: Registry, functions: dict[str, str], prefix: str = "sfdcflex") -> None:
        self.routes: dict[str, _RouteCounts] = {}   # by label
        self._by_path: dict[str, _RouteCounts] = {}
        for path, name in list(functions.items()) + [("", "other")]:
            self._by_path[path] = self.routes.setdefault(name, _RouteCounts(len(LATENCY_BUCKETS)))
        self._other = self.routes["other"]
        registry.reading(f"{prefix}_requests_total", "HTTP requests answered, by function (route "
                         "name; other for any unknown path) and status class.", "counter",
                         self._by_class, ("function", "code"))
        registry.add(_Durations(f"{prefix}_request_duration_seconds",
                                "Time from a request read to its answer, by function.", self))
        registry.reading(f"{prefix}_overload_answers_total", "Answers that say the server is over a "
                         "bound: 429 concurrency cap, 503 busy or out of body memory, 504 time limit.",
                         "counter", self._overload, ("code",))

    def observe(self, request: object, path: str, reply: Reply, seconds: float) -> None:
        """Count one answer (the signature of app.RequestObserver; the request is not needed)."""
        counts = self._by_path.get(path, self._other)
        # bisect_left: a value equal to a bound belongs to that bound's bucket (le, "less or equal").
        index = bisect_left(LATENCY_BUCKETS, seconds)
        with counts.lock:
            counts.by_status[reply.status] += 1
            counts.buckets[index] += 1
            counts.seconds += seconds

    def _by_class(self) -> Iterable[tuple[Sequence[str], int]]:
        for name, counts in self.routes.items():
            by_status = counts.snapshot()[0]
            for first in range(1, 10):  # 6xx to 9xx only when a function sent one
                count = sum(by_status[first * 100:first * 100 + 100])
                if first <= 5 or count:
                    yield (name, f"{first}xx"), count

    def _overload(self) -> Iterable[tuple[Sequence[str], int]]:
        snapshots = [counts.snapshot()[0] for counts in self.routes.values()]
        for status in OVERLOAD_STATUSES:
            yield (str(status),), sum(by_status[status] for by_status in snapshots)


def process_families(registry: Registry, version: str, prefix: str = "sfdcflex",
                     started: float | None = None) -> None:
    """`process_start_time_seconds` and `<prefix>_build_info{version}` = 1, as the convention has them
    (a start time lets a dashboard see restarts; an info gauge carries text as a label)."""
    start = time.time() if started is None else started
    registry.reading("process_start_time_seconds", "Start time of the process since the Unix epoch "
                     "in seconds.", "gauge", lambda: [((), start)])
    registry.reading(f"{prefix}_build_info", "The running version, as a label; the value is always 1.",
                     "gauge", lambda: [((version,), 1)], ("version",))
