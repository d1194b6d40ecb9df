"""A strict parser of the Prometheus text exposition format, version 0.0.4, for the tests.

It refuses what Prometheus's own parser refuses and more (https://prometheus.io/docs/
instrumenting/exposition_formats/): a sample before its family's `# TYPE`, a TYPE given twice or
after the samples, a name or label name outside the grammar, a label repeated, an unknown escape,
a value that is not a float, a family's samples split by another family, and for histograms:
`_bucket` samples not ascending in `le`, not cumulative, not ending in `+Inf`, or a `_count`
other than the `+Inf` bucket.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


class FormatError(ValueError):
    """The text breaks the format; the message names the line."""


@dataclass
class Family:
    name: str
    kind: str = "untyped"
    help: str | None = None
    typed: bool = False
    # (sample name, labels as a sorted tuple of pairs) -> value
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)

    def value(self, sample: str | None = None, **labels: str) -> float:
        """The value of one sample (by default named like the family); KeyError when absent."""
        return self.samples[(sample or self.name, tuple(sorted(labels.items())))]


def parse(text: str) -> dict[str, Family]:
    """Every family of `text`, checked; raises FormatError at the first thing out of place."""
    if not text.endswith("\n"):
        raise FormatError("the exposition must end with a line feed")
    families: dict[str, Family] = {}
    current: Family | None = None
    finished: set[str] = set()
    for number, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {number}: {line!r}"
        if not line.strip():
            continue
        if line.startswith("#"):
            current = _comment(line, families, finished, current, where)
            continue
        name, labels, value = _sample(line, where)
        family = _family_of(name, families)
        if family is None:
            raise FormatError(f"{where}: a sample with no # TYPE before it")
        if current is not family:
            if family.name in finished or (current is not None and family.name in families and family.samples):
                raise FormatError(f"{where}: the samples of {family.name} are split")
            if current is not None:
                finished.add(current.name)
            current = family
        key = (name, tuple(sorted(labels.items())))
        if key in family.samples:
            raise FormatError(f"{where}: the same sample twice")
        family.samples[key] = value
    for family in families.values():
        if family.kind == "histogram":
            _check_histogram(family)
        if family.kind == "counter" and any(v < 0 or math.isnan(v) for v in family.samples.values()):
            raise FormatError(f"{family.name}: a counter below 0")
    return families


def _comment(line: str, families: dict[str, Family], finished: set[str], current: Family | None,
             where: str) -> Family | None:
    parts = line.split(" ", 3)
    if len(parts) < 3 or parts[0] != "#" or parts[1] not in ("HELP", "TYPE"):
        return current  # any other comment is allowed and ignored
    keyword, name = parts[1], parts[2]
    if not NAME.fullmatch(name):
        raise FormatError(f"{where}: {name!r} is not a metric name")
    family = families.get(name)
    if family is not None and family.samples:
        raise FormatError(f"{where}: # {keyword} after the samples of {name}")
    family = families.setdefault(name, Family(name))
    if current is not None and current is not family:
        finished.add(current.name)
    if keyword == "TYPE":
        kind = parts[3] if len(parts) == 4 else ""
        if kind not in TYPES:
            raise FormatError(f"{where}: unknown type {kind!r}")
        if family.typed:
            raise FormatError(f"{where}: a second # TYPE for {name}")
        family.kind, family.typed = kind, True
    else:
        if family.help is not None:
            raise FormatError(f"{where}: a second # HELP for {name}")
        family.help = _unescape(parts[3] if len(parts) == 4 else "", where, quotes=False)
    return family


def _sample(line: str, where: str) -> tuple[str, dict[str, str], float]:
    match = NAME.match(line)
    if not match:
        raise FormatError(f"{where}: no metric name")
    name, rest = match.group(), line[match.end():]
    labels: dict[str, str] = {}
    if rest.startswith("{"):
        rest = _labels(rest[1:], labels, where)
    if not rest.startswith(" "):
        raise FormatError(f"{where}: no space before the value")
    fields = rest.strip(" ").split(" ")
    if len(fields) not in (1, 2):
        raise FormatError(f"{where}: expected a value and an optional timestamp")
    if len(fields) == 2 and not re.fullmatch(r"-?[0-9]+", fields[1]):
        raise FormatError(f"{where}: the timestamp is not an integer")
    return name, labels, _float(fields[0], where)


def _labels(rest: str, labels: dict[str, str], where: str) -> str:
    while True:
        if rest.startswith("}"):
            return rest[1:]
        match = LABEL_NAME.match(rest)
        if not match or rest[match.end():match.end() + 2] != '="':
            raise FormatError(f"{where}: a malformed label")
        label = match.group()
        if label in labels:
            raise FormatError(f"{where}: the label {label} twice")
        rest = rest[match.end() + 2:]
        value, index = [], 0
        while True:
            if index >= len(rest):
                raise FormatError(f"{where}: an unterminated label value")
            char = rest[index]
            if char == "\\":
                if index + 1 >= len(rest) or rest[index + 1] not in _ESCAPES:
                    raise FormatError(f"{where}: an unknown escape in a label value")
                value.append(_ESCAPES[rest[index + 1]])
                index += 2
            elif char == '"':
                break
            elif char == "\n":
                raise FormatError(f"{where}: a raw line feed in a label value")
            else:
                value.append(char)
                index += 1
        labels[label] = "".join(value)
        rest = rest[index + 1:]
        if rest.startswith(","):
            rest = rest[1:]
        elif not rest.startswith("}"):
            raise FormatError(f"{where}: labels must be separated by commas")


def _unescape(text: str, where: str, quotes: bool) -> str:
    out, index = [], 0
    while index < len(text):
        if text[index] == "\\":
            nxt = text[index + 1:index + 2]
            if nxt not in ("\\", "n") and not (quotes and nxt == '"'):
                raise FormatError(f"{where}: an unknown escape")
            out.append(_ESCAPES[nxt])
            index += 2
        else:
            out.append(text[index])
            index += 1
    return "".join(out)


def _float(text: str, where: str) -> float:
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?", text):
        raise FormatError(f"{where}: {text!r} is not a number")
    return float(text)


def _family_of(sample: str, families: dict[str, Family]) -> Family | None:
    if sample in families:
        return families[sample]
    for suffix in ("_bucket", "_sum", "_count"):
        if sample.endswith(suffix) and sample[:-len(suffix)] in families:
            family = families[sample[:-len(suffix)]]
            if family.kind in ("histogram", "summary"):
                return family
    return None


def _check_histogram(family: Family) -> None:
    series: dict[tuple, list[tuple[float, float]]] = {}
    for (name, labels), value in family.samples.items():
        if name == family.name + "_bucket":
            rest = tuple(pair for pair in labels if pair[0] != "le")
            le = dict(labels).get("le")
            if le is None:
                raise FormatError(f"{family.name}: a bucket without le")
            series.setdefault(rest, []).append((_float(le, family.name), value))
        elif name not in (family.name + "_sum", family.name + "_count"):
            raise FormatError(f"{family.name}: {name} is not a histogram sample")
    for rest, buckets in series.items():
        bounds = [bound for bound, _ in buckets]
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise FormatError(f"{family.name}{rest}: le bounds not ascending")
        if bounds[-1] != math.inf:
            raise FormatError(f"{family.name}{rest}: the last bucket is not +Inf")
        counts = [count for _, count in buckets]
        if counts != sorted(counts):
            raise FormatError(f"{family.name}{rest}: buckets are not cumulative")
        count = family.samples.get((family.name + "_count", rest))
        if count != counts[-1] or (family.name + "_sum", rest) not in family.samples:
            raise FormatError(f"{family.name}{rest}: _count is not the +Inf bucket, or _sum is missing")


def scrape(url: str, headers: dict[str, str] | None = None) -> dict[str, Family]:
    """GET /metrics from a server at `url`, checked strictly; fails unless it answered 200 in 0.0.4."""
    from .http import call
    answer = call(url, "GET", "/metrics", headers=headers)
    assert answer.status == 200, answer.body
    assert answer.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(answer.body.decode("utf-8"))


def samples(families: dict[str, Family], name: str) -> dict[tuple, float]:
    """One family's samples by their labels, {} when the family is absent."""
    family = families.get(name)
    return {labels: value for (_, labels), value in family.samples.items()} if family else {}


def moved(before: dict[str, Family], after: dict[str, Family], name: str) -> dict[tuple, float]:
    """How each sample of a counter family moved between two scrapes; samples that did not move are left out."""
    old, new = samples(before, name), samples(after, name)
    return {labels: value - old.get(labels, 0) for labels, value in new.items() if value != old.get(labels, 0)}
