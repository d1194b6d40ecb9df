"""Query strings parsed as Twilio's runtime parses them: Express's "extended" parser, the `qs` package.

`a=1&a=2` → {"a": ["1", "2"]}, `a[]=1&a[]=2` → {"a": ["1", "2"]}, `a[b]=c` → {"a": {"b": "c"}},
`a[1]=x` → {"a": ["x"]} (arrays are compacted). qs's limits hold: 1,000 parameters (the rest
are ignored), brackets nested 5 deep (deeper ones stay one literal key), and array indices up
to the array limit (larger ones become object keys, so `a[99999]=x` cannot build a huge list).
Express 4 calls qs with `arrayLimit: 1000` (express/lib/utils.js), so that is the limit here;
measured against twilio-run 5, `a[25]=x` gives ["x"]. One deliberate difference: a percent
escape that is not UTF-8 (`Jos%E9`) decodes with U+FFFD here, where qs keeps the raw text.
"""
from __future__ import annotations

import re
from urllib.parse import unquote

PARAMETER_LIMIT = 1000
DEPTH = 5
ARRAY_LIMIT = 1000
_INDEX = re.compile(r"0|[1-9][0-9]*")
_ENCODED_BRACKET = re.compile(r"%5[bBdD]")


class _Array:
    """A JavaScript array while the result is built: it may have holes until it is compacted."""

    __slots__ = ("items", "length")

    def __init__(self, values: list | None = None) -> None:
        self.items: dict[int, object] = dict(enumerate(values or ()))
        self.length = len(self.items)

    def set(self, index: int, value: object) -> None:
        self.items[index] = value
        self.length = max(self.length, index + 1)

    def append(self, value: object) -> None:
        self.set(self.length, value)

    def values(self) -> list:
        return [self.items[i] for i in sorted(self.items)]

    def as_object(self) -> dict:
        return {str(i): self.items[i] for i in sorted(self.items)}


def decode(text: str) -> str:
    """`+` is a space, then percent escapes as UTF-8; a bad sequence becomes U+FFFD."""
    return unquote(text.replace("+", " "), errors="replace")


def _flat_pairs(query: str) -> dict[str, object]:
    """qs's first pass: split, decode, and gather repeated names into arrays."""
    query = _ENCODED_BRACKET.sub(lambda m: "[" if m[0][2] in "bB" else "]", query)
    flat: dict[str, object] = {}
    for part in query.split("&")[:PARAMETER_LIMIT]:
        bracket_equals = part.find("]=")
        split = part.find("=") if bracket_equals == -1 else bracket_equals + 1
        key = decode(part if split == -1 else part[:split])
        value = "" if split == -1 else decode(part[split + 1:])
        if key in flat:
            held = flat[key]
            flat[key] = held if isinstance(held, _Array) else _Array([held])
            flat[key].append(value)
        else:
            flat[key] = value
    return flat


def _segments(key: str) -> list[str]:
    """`a[b][c]` → ['a', '[b]', '[c]']; past DEPTH groups the rest is one literal segment."""
    first = key.find("[")
    parent = key if first == -1 else key[:first]
    segments = [parent] if parent else []
    opening, collected = first, 0
    while opening >= 0 and collected < DEPTH:
        level, close = 0, -1
        for position in range(opening, len(key)):
            level += {"[": 1, "]": -1}.get(key[position], 0)
            if level == 0:
                close = position
                break
        if close < 0:   # unbalanced: the rest stays one literal segment
            return segments + ["[" + key[opening:] + "]"]
        segments.append(key[opening:close + 1])
        collected += 1
        opening = key.find("[", close + 1)
    if opening >= 0:
        segments.append("[" + key[opening:] + "]")
    return segments


def _nest(segments: list[str], leaf: object) -> object:
    """The value one `key=value` pair stands for, built from the innermost segment out."""
    for segment in reversed(segments):
        if segment == "[]":
            leaf = _Array(leaf.values() if isinstance(leaf, _Array) else [leaf])
            continue
        bracketed = segment[:1] == "[" and segment[-1:] == "]"
        name = segment[1:-1] if bracketed else segment
        if bracketed and _INDEX.fullmatch(name) and int(name) < ARRAY_LIMIT:
            array = _Array()
            array.set(int(name), leaf)
            leaf = array
        else:
            # qs never assigns "__proto__"; here it would be an ordinary key, but keep the same result.
            leaf = {} if name == "__proto__" else {name: leaf}
    return leaf


def _merge(target: object, source: object) -> object:
    """qs's utils.merge: how a new pair's value joins what earlier pairs built."""
    if source is None or source == "":
        return target
    if not isinstance(source, (dict, _Array)):
        if isinstance(target, _Array):
            target.append(source)
            return target
        return _Array([target, source])
    if not isinstance(target, (dict, _Array)):
        return _Array([target] + (source.values() if isinstance(source, _Array) else [source]))
    if isinstance(target, _Array) and isinstance(source, _Array):
        for index in sorted(source.items):
            item = source.items[index]
            if index not in target.items:
                target.set(index, item)
            elif isinstance(target.items[index], (dict, _Array)) and isinstance(item, (dict, _Array)):
                target.items[index] = _merge(target.items[index], item)
            else:
                target.append(item)
        return target
    merged = target.as_object() if isinstance(target, _Array) else target
    for key, value in (source.as_object() if isinstance(source, _Array) else source).items():
        merged[key] = _merge(merged[key], value) if key in merged else value
    return merged


def _compact(value: object) -> object:
    if isinstance(value, _Array):
        return [_compact(item) for item in value.values()]
    if isinstance(value, dict):
        return {key: _compact(item) for key, item in value.items()}
    return value


def parse_query(query: str) -> dict[str, object]:
    """The query string's parameters as qs gives them to a Twilio function's `event`."""
    result: dict[str, object] = {}
    for key, value in _flat_pairs(query).items():
        if key:
            result = _merge(result, _nest(_segments(key), value))
    return _compact(result)
