"""HTTP/1.1 request heads read strictly (RFC 9112), and replies laid out for one write.

Strict because a proxy in front may read a lax message differently: a bare CR, a bare LF line
end or a NUL byte (RFC 9112 §2.2, RFC 9110 §5.5) and a Content-Length that is not plain ASCII
digits (RFC 9110 §8.6) could make it see another request boundary than this server does
(request smuggling). Each is answered 400 and the connection closed.
"""
from __future__ import annotations

import re
import time
from functools import lru_cache
from typing import NamedTuple

from ..errors import (BadRequest, HeadersTooLarge, LengthRequired, URITooLong,
                     VersionNotSupported)
from ..response import Reply, reason

MAX_REQUEST_LINE = 8192
MAX_HEADER_BYTES = 15 * 1024   # Twilio answers 431 past about this much
MAX_HEADER_COUNT = 100
MAX_HEAD_BYTES = MAX_REQUEST_LINE + MAX_HEADER_BYTES + 4
_TCHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# A field name (RFC 9110 §5.1); a field's value is latin-1 text, free of CR, LF and NUL.
_TOKEN = re.compile(_TCHARS)
# 18 digits stay below 2**63: no bignum, and no length any other parser would read differently.
_LENGTH = re.compile(r"[0-9]{1,18}")
_VERSION = re.compile(r"HTTP/[0-9]\.[0-9]")
_END = b"\r\n\r\n"


class Head(NamedTuple):
    """A request line and its header fields, read and checked; the body is not read yet.
    (A named tuple: made once per request, it costs a fifth of a frozen dataclass.) Immutable
    through and through, headers included: one Head may serve many requests (`parse_head`)."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    keep_alive: bool
    length: int
    expects_continue: bool

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


def find_head(buffer: bytes | bytearray) -> int:
    """The length of the complete head at the start of `buffer` (blank line included), or -1.

    Refuses at once what cannot become a valid head: NUL bytes, bare LF line ends (the client
    would otherwise wait for a CRLF CRLF that never comes), a head over the size limits.
    """
    end = buffer.find(_END)
    stop = end + 4 if end >= 0 else len(buffer)  # what follows the head is body: not checked
    if buffer.find(b"\0", 0, stop) >= 0:
        raise BadRequest("NUL bytes are not allowed in a request head", code="bad_header")
    if buffer.count(b"\n", 0, stop) != buffer.count(b"\r\n", 0, stop):
        raise BadRequest("lines must end with CRLF; a bare LF is not accepted", code="bad_header")
    if end >= 0:
        return end + 4
    if buffer.find(b"\r\n", 0, MAX_REQUEST_LINE + 2) < 0 and len(buffer) > MAX_REQUEST_LINE + 1:
        raise URITooLong(f"the request line is longer than {MAX_REQUEST_LINE} bytes")
    if len(buffer) > MAX_HEAD_BYTES:
        raise _too_large()
    return -1


# Heads up to this size are remembered, the last MEMO_HEADS of them: an agent's panel sends the
# same head again and again on its connection (its token and the caller are in the body), and a
# remembered head is a dictionary lookup instead of a parse (0.6 µs instead of 4). At most
# MEMO_HEADS x MEMO_HEAD_BYTES (1 MiB) held; a head that fails its checks is never remembered.
MEMO_HEADS = 512
MEMO_HEAD_BYTES = 2048


def complete_head(buffer: bytes | bytearray) -> tuple[int, Head] | None:
    """The complete head at the start of `buffer`, read and checked, and its length; None while
    it is still arriving. A head up to MEMO_HEAD_BYTES is found with one search and checked by
    `parse_head` alone, which holds every check `find_head` makes: a head seen lately then costs
    a search and a dictionary lookup, not four scans of its bytes."""
    end = buffer.find(_END, 0, MEMO_HEAD_BYTES)
    if end >= 0:
        return end + 4, parse_head(bytes(buffer[:end + 4]))
    end = find_head(buffer)
    return None if end < 0 else (end, parse_head(bytes(buffer[:end])))


def parse_head(data: bytes) -> Head:
    """Check and read a complete head, as `find_head` delimited it (ending in CRLF CRLF), with
    `find_head`'s checks too. A pure function of the bytes: a head seen lately is answered from
    memory."""
    if len(data) <= MEMO_HEAD_BYTES:
        return _remembered_head(data)
    return _parse_head(data)


def _parse_head(data: bytes) -> Head:
    if data.find(b"\0") >= 0:
        raise BadRequest("NUL bytes are not allowed in a request head", code="bad_header")
    crlf = data.count(b"\r\n")
    if data.count(b"\n") != crlf:
        raise BadRequest("lines must end with CRLF; a bare LF is not accepted", code="bad_header")
    if data.count(b"\r") != crlf:
        raise BadRequest("a bare CR is not allowed in a request head", code="bad_header")
    lines = data[:-4].decode("latin-1").split("\r\n")
    method, target, version = _request_line(lines[0])
    if len(lines) - 1 > MAX_HEADER_COUNT or len(data) - len(lines[0]) - 2 > MAX_HEADER_BYTES:
        raise _too_large()
    headers = []
    fields = {}
    lengths = set()
    hosts = 0
    token = _TOKEN.fullmatch
    for line in lines[1:]:
        name, colon, value = line.partition(":")  # field-name ":" OWS field-value OWS
        if not colon or token(name) is None:
            raise _bad_field(line)
        value = value.strip(" \t")
        headers.append((name, value))
        lower = name.lower()
        fields[lower] = value
        if lower == "content-length":
            lengths.add(value)
        elif lower == "host":
            hosts += 1
    # RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host and to any
    # request with more than one (two Hosts: which one a proxy routed by is unknowable).
    if hosts > 1 or (not hosts and version == "HTTP/1.1"):
        raise BadRequest("send exactly one Host header" if hosts else
                         "an HTTP/1.1 request needs a Host header", code="bad_host")
    connection = fields.get("connection", "").lower()
    keep_alive = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
    length = _content_length(lengths, fields)
    expects = length > 0 and fields.get("expect", "").lower() == "100-continue"
    return Head(method, target, tuple(headers), keep_alive, length, expects)


_remembered_head = lru_cache(maxsize=MEMO_HEADS)(_parse_head)


def _too_large() -> HeadersTooLarge:
    return HeadersTooLarge(f"request headers are limited to {MAX_HEADER_BYTES} bytes "
                           f"and {MAX_HEADER_COUNT} lines")


def _request_line(line: str) -> tuple[str, str, str]:
    if len(line) > MAX_REQUEST_LINE:
        raise URITooLong(f"the request line is longer than {MAX_REQUEST_LINE} bytes")
    parts = line.split(" ")
    # A target is origin-form ("/path?query") or absolute-form ("http://host/path", which a
    # server must accept, RFC 9112 §3.2.2), in ASCII: raw UTF-8 is not a URI (RFC 3986 §2).
    if (len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1].isascii()
            or not parts[1].startswith(("/", "http://", "https://"))):
        raise BadRequest("malformed request line", code="bad_request_line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        if _VERSION.fullmatch(version):
            raise VersionNotSupported(f"{version} is not supported; use HTTP/1.1")
        raise BadRequest("malformed HTTP version", code="bad_request_line")
    return method, target, version


def _bad_field(line: str) -> BadRequest:
    if line[:1] in (" ", "\t"):
        return BadRequest("obsolete header line folding is not accepted", code="bad_header")
    return BadRequest("malformed header line", code="bad_header")


def _content_length(lengths: set[str], fields: dict[str, str]) -> int:
    if len(lengths) > 1:  # which one a proxy believed is unknowable: request smuggling
        raise BadRequest("conflicting Content-Length headers", code="bad_content_length")
    if "transfer-encoding" in fields:
        # Chunked request bodies are rare from browsers and Twilio; refusing them also
        # closes the door on Content-Length / Transfer-Encoding smuggling.
        raise LengthRequired("send the body with a Content-Length; chunked bodies are not accepted")
    if not lengths:
        return 0
    raw = lengths.pop()
    if not _LENGTH.fullmatch(raw):
        raise BadRequest("Content-Length must be 1 to 18 ASCII digits", code="bad_content_length")
    return int(raw)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class HttpDate:
    """The Date header (RFC 9110 IMF-fixdate), formatted once a second rather than once a request."""

    def __init__(self) -> None:
        self._second, self._text = -1, ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            t = time.gmtime(second)
            self._text = (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
                          f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")
            self._second = second
        return self._text


def encode_reply(reply: Reply, date: str, keep_alive: bool, head_only: bool = False) -> bytes:
    """Status line, headers and body as one bytes object, for a single send.

    Two writes (head, then body) meet Nagle's algorithm and delayed ACK on keep-alive
    connections and add ~40 ms to a request.
    """
    lines = [f"HTTP/1.1 {reply.status} {reason(reply.status)}", f"Date: {date}", "Server: sfdcflex"]
    if reply.status not in (204, 304) and not 100 <= reply.status < 200:
        lines.append(f"Content-Length: {len(reply.body)}")
    lines += [f"{name}: {value}" for name, value in reply.headers]
    if not keep_alive:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
    return head if head_only else head + reply.body
