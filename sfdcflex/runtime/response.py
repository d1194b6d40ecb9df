"""The Response object a function builds, like Twilio's `Twilio.Response`."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from http import HTTPStatus


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


def encode_json(payload: object) -> bytes:
    """JSON bytes in UTF-8; compact, as an API answers."""
    return _JSON.encode(payload).encode("utf-8")


def reply_for(payload: object) -> Reply:
    """Turn what a function passed to `callback` into a reply, by type, as Twilio does."""
    if isinstance(payload, Response):
        return payload.to_reply()
    if payload is None:
        return Reply(200)
    if isinstance(payload, str):
        return Reply(200, [("Content-Type", "text/plain; charset=utf-8")], payload.encode("utf-8"))
    if isinstance(payload, (bytes, bytearray)):
        return Reply(200, [("Content-Type", "application/octet-stream")], bytes(payload))
    return Reply(200, [("Content-Type", "application/json")], encode_json(payload))


class Response:
    """A response a function builds step by step; every setter returns the response."""

    def __init__(self, body: object = None, status_code: int = 200,
                 headers: dict[str, object] | None = None) -> None:
        self._status = 200
        self._body: object = body
        self._headers: dict[str, list[str]] = {}
        self._cookies: list[str] = []
        if status_code != 200:  # the usual 200 and no headers need no checks: one per request
            self.set_status_code(status_code)
        if headers:
            self.set_headers(headers)

    def set_status_code(self, code: int) -> Response:
        if not isinstance(code, int) or not 100 <= code <= 599:
            raise ValueError(f"status code must be an int from 100 to 599, not {code!r}")
        self._status = code
        return self

    def set_body(self, body: object) -> Response:
        self._body = body
        return self

    def append_header(self, name: str, value: object) -> Response:
        """Add a header; a repeated name adds another value rather than replacing it."""
        _check_header(name, value)
        self._headers.setdefault(name.lower(), []).append(str(value))
        return self

    def set_headers(self, headers: dict[str, object]) -> Response:
        """Replace every header with `headers` (a list value gives one header line per item)."""
        self._headers = {}
        for name, value in headers.items():
            for item in value if isinstance(value, (list, tuple)) else [value]:
                self.append_header(name, item)
        return self

    def set_cookie(self, name: str, value: str, attrs: tuple[str, ...] | list[str] = ()) -> Response:
        """Set a cookie: `attrs` are raw attributes such as "Max-Age=3600" or "HttpOnly"."""
        _check_header(name, value)
        for attr in attrs:
            _check_header(name, attr)
        self._cookies.append("; ".join([f"{name}={value}", *attrs]))
        return self

    def remove_cookie(self, name: str) -> Response:
        return self.set_cookie(name, "", ("Max-Age=0",))

    def to_reply(self) -> Reply:
        headers = [(_title(name), value) for name, values in self._headers.items() for value in values]
        headers += [("Set-Cookie", cookie) for cookie in self._cookies]
        body = self._body
        if body is None:
            data = b""
        elif isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        elif isinstance(body, str):
            data = body.encode("utf-8")
            if "content-type" not in self._headers:
                headers.append(("Content-Type", "text/plain; charset=utf-8"))
        else:
            data = encode_json(body)
            if "content-type" not in self._headers:
                headers.append(("Content-Type", "application/json"))
        return Reply(self._status, headers, data)


def _check_header(name: str, value: object) -> None:
    """A CR or LF in a header would let a caller split the response (header injection)."""
    name, value = str(name), str(value)
    both = name + value
    if "\r" in both or "\n" in both or "\0" in both or not name.strip():
        raise ValueError(f"invalid header {name!r}")


@lru_cache(maxsize=256)  # a few names come back on every reply; a function's odd ones stay few
def _title(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
