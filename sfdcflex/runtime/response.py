"""The Response object a function builds, like Twilio's `Twilio.Response`, and how a function's
answer becomes bytes on the wire, as @twilio/runtime-handler 2.1.0 sends it (through Express's
`res.set` and `res.send`): the differential suite (tests/runtime/test_differential.py) keeps it so."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from http import HTTPStatus

JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"


@dataclass
class Reply:
    """What goes back on the wire: a status, header pairs and the body bytes."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


# Made once: json.dumps with any option builds a new encoder on every call.
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def encode_json(payload: object) -> bytes:
    """JSON bytes in UTF-8, compact, as JSON.stringify writes them: a lone surrogate (which a
    JSON body may carry in, as "\\ud800") goes out escaped, since it is no UTF-8 at all."""
    text = _JSON.encode(payload)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode("utf-8")


def reply_for(payload: object) -> Reply:
    """Turn what a function passed to `callback` into a reply, by type, as Twilio does; a Reply,
    which the runtime's own helpers build whole (ServerTiming.json_response), is sent as is."""
    if payload.__class__ is Reply:
        return payload
    if isinstance(payload, Response):
        return payload.to_reply()
    if isinstance(payload, str):
        return Reply(200, [("Content-Type", TEXT_TYPE)], payload.encode("utf-8"))
    if isinstance(payload, (bytes, bytearray)):
        return Reply(200, [("Content-Type", "application/octet-stream")], bytes(payload))
    if payload is None:   # callback() or callback(None, None): an empty JSON answer, as Twilio's
        return Reply(200, [("Content-Type", JSON_TYPE)])
    return Reply(200, [("Content-Type", JSON_TYPE)], encode_json(payload))


class Response:
    """A response a function builds step by step; every setter returns the response.

    Headers are kept by the name as given, as Twilio's Response keeps them: `append_header` on
    the same name adds a value, and of two names that differ only in letter case the one set
    last is sent (Node's setHeader ignores case). Cookies are joined as Twilio writes them:
    `name=value;Max-Age=60;HttpOnly`.
    """

    def __init__(self, body: object = None, status_code: int = 200,
                 headers: dict[str, object] | None = None) -> None:
        self._status = 200
        self._body: object = body
        self._headers: dict[str, list[str]] = {}
        self._spelling: dict[str, str] = {}   # lower-case name -> the spelling sent
        self._cookies: list[str] = []
        if status_code != 200:  # the usual 200 and no headers need no checks: one per request
            self.set_status_code(status_code)
        if headers:
            self.set_headers(headers)

    def set_status_code(self, code: int | str) -> Response:
        """Any status Node sends, 100 to 999; digits in a string count too ("201"), as in Node."""
        if isinstance(code, str) and code.isdigit():
            code = int(code)
        if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 999:
            raise ValueError(f"status code must be an int from 100 to 999, not {code!r}")
        self._status = code
        return self

    def set_body(self, body: object) -> Response:
        self._body = body
        return self

    def append_header(self, name: str, value: object) -> Response:
        """Add a header; a repeated name adds another value, and a list adds each of its items
        (Twilio's typings: `appendHeader(key, value: string | string[])`)."""
        if type(value) is str:   # the usual case, checked inline: one per header per request
            _check_header(name, value)
            values = [value]
        else:
            values = [str(item) for item in value] if isinstance(value, (list, tuple)) else [str(value)]
            for item in values:
                _check_header(name, item)
        held = self._headers.get(name)
        if held is not None:
            held += values
            return self
        lower = name.lower()
        if lower == "set-cookie":
            self._cookies += values
        else:   # a new spelling of a name is sent instead of any earlier one, as Node's setHeader
            self._headers[name] = values
            self._spelling[lower] = name
        return self

    def set_headers(self, headers: dict[str, object]) -> Response:
        """Replace every header, cookies set before included, with `headers`."""
        self._headers, self._spelling, self._cookies = {}, {}, []
        for name, value in headers.items():
            self.append_header(name, value)
        return self

    def set_cookie(self, name: str, value: str, attrs: tuple[str, ...] | list[str] = ()) -> Response:
        """Set a cookie: `attrs` are raw attributes such as "Max-Age=3600" or "HttpOnly"."""
        cookie = ";".join([f"{name}={value}", *attrs])
        _check_header(name, cookie)
        self._cookies.append(cookie)
        return self

    def remove_cookie(self, name: str) -> Response:
        """Drop a cookie set earlier under `name` and tell the browser to forget it."""
        prefix = f"{name}="
        self._cookies = [cookie for cookie in self._cookies if not cookie.startswith(prefix)]
        self._cookies.append(f"{name}=;Max-Age=0")
        return self

    def to_reply(self) -> Reply:
        headers: list[tuple[str, str]] = []
        kind = None
        if self._headers:
            sent = self._spelling
            typed = sent.get("content-type")
            if typed is not None:
                kind = self._headers[typed][-1]
            spelt_twice = len(sent) != len(self._headers)
            for name, values in self._headers.items():
                if name is typed or (spelt_twice and sent[name.lower()] is not name):
                    continue   # the type goes out last; of two spellings, the later one only
                if len(values) == 1:
                    headers.append((name, values[0]))
                else:
                    headers += [(name, value) for value in values]
        if self._cookies:
            headers += [("Set-Cookie", cookie) for cookie in self._cookies]
        if self._status in (204, 304):   # no body, so no type (Express drops both)
            return Reply(self._status, headers)
        body = self._body
        if isinstance(body, (bytes, bytearray)):
            data = bytes(body)
            kind = _with_default_charset(kind) if kind else "application/octet-stream"
        elif isinstance(body, str) or body is None:
            data = body.encode("utf-8") if body else b""
            kind = _with_utf8(kind or "text/html") if body is not None or kind else None
        else:
            data = encode_json(body)
            kind = _with_utf8(kind) if kind else JSON_TYPE
        if kind:
            headers.append(("Content-Type", kind))
        return Reply(self._status, headers, data)


def _check_header(name: str, value: object) -> None:
    """A CR or LF in a header would let a caller split the response (header injection)."""
    name, value = str(name), str(value)
    both = name + value
    if "\r" in both or "\n" in both or "\0" in both or not name.strip():
        raise ValueError(f"invalid header {name!r}")


@lru_cache(maxsize=256)   # a function sends few types; each is worked out once
def _with_utf8(kind: str) -> str:
    """`kind` with its charset set to utf-8, parameters in name order: what Express sends with
    text (its setCharset), whatever charset the function named."""
    media, *params = kind.split(";")
    kept = sorted(p.strip() for p in params if p.strip() and p.split("=", 1)[0].strip().lower() != "charset")
    return "; ".join([media.strip().lower(), *sorted(kept + ["charset=utf-8"])])


_TEXTUAL = re.compile(r"^(text/|application/(javascript|json))", re.IGNORECASE)


@lru_cache(maxsize=256)
def _with_default_charset(kind: str) -> str:
    """Express's res.set: a textual type without a charset gets `charset=utf-8`."""
    if "charset" in kind.lower() or not _TEXTUAL.match(kind):
        return kind
    return f"{kind}; charset=utf-8"


@lru_cache(maxsize=1024)   # 100 to 999: every status a function may send
def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
