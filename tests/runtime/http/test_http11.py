"""Strict request heads and one-write replies (http11.py). http11 is pure, so these call it
directly: every refusal's status, code and message, the limits at their exact edges (100 header
lines pass, 101 do not; 15 KiB of header bytes; an 8 KiB request line), and the reply's framing.
"""
from __future__ import annotations

import email.utils
import time

import pytest

from sfdcflex.runtime.http import http11
from sfdcflex.runtime.errors import (BadRequest, HeadersTooLarge, LengthRequired, URITooLong,
                                     VersionNotSupported)
from sfdcflex.runtime.http.http11 import (MAX_HEAD_BYTES, MAX_HEADER_BYTES, MAX_HEADER_COUNT,
                                     MAX_REQUEST_LINE, HttpDate, complete_head, encode_reply,
                                     find_head, parse_head)
from sfdcflex.runtime.response import Reply

TOO_LARGE = (HeadersTooLarge, "headers_too_large",
             "request headers are limited to 15360 bytes and 100 lines")
URI_TOO_LONG = (URITooLong, "uri_too_long", "the request line is longer than 8192 bytes")


def read(buffer: bytes):
    """What the connection does with a buffer: delimit the head and parse it (complete_head),
    and, for a head no longer than MEMO_HEAD_BYTES, what parse_head alone does: the connection
    checks such a head with parse_head only. Both agree (the same refusal or the same Head)."""
    separately = None
    if len(buffer) <= http11.MEMO_HEAD_BYTES:
        try:
            separately = parse_head(buffer)
        except Exception as error:
            separately = error
    try:
        found = complete_head(bytearray(buffer))
    except Exception as error:
        if separately is not None:
            assert (type(separately), str(separately)) == (type(error), str(error))
        raise
    assert found is not None and found[0] == len(buffer), found
    assert separately is None or separately == found[1]
    return found[1]


def refusal(buffer: bytes) -> tuple[type, str, str]:
    with pytest.raises(Exception) as raised:
        read(buffer)
    return type(raised.value), raised.value.code, raised.value.message


def test_the_limits_are_the_documented_ones():
    assert (MAX_REQUEST_LINE, MAX_HEADER_BYTES, MAX_HEADER_COUNT) == (8192, 15 * 1024, 100)
    assert MAX_HEAD_BYTES == 8192 + 15 * 1024 + 4


@pytest.mark.parametrize("buffer,expected", [
    (b"GET / HTTP/1.1\r\nX-A: one\rtwo\r\n\r\n",
     (BadRequest, "bad_header", "a bare CR is not allowed in a request head")),
    (b"GET / HTTP/1.1\r\nX-A: o\x00ne\r\n\r\n",
     (BadRequest, "bad_header", "NUL bytes are not allowed in a request head")),
    (b"GET / HTTP/1.1\r\nX-A: one\ntwo\r\n\r\n",
     (BadRequest, "bad_header", "lines must end with CRLF; a bare LF is not accepted")),
    (b"\x00GET / HTTP/1.1\r\n\r\n",   # the first byte too
     (BadRequest, "bad_header", "NUL bytes are not allowed in a request head")),
    (b"\nGET / HTTP/1.1\r\n\r\n",
     (BadRequest, "bad_header", "lines must end with CRLF; a bare LF is not accepted")),
    (b"GET /a b HTTP/1.1\r\n\r\n", (BadRequest, "bad_request_line", "malformed request line")),
    (b"GET / HTTP/1.1 \r\n\r\n", (BadRequest, "bad_request_line", "malformed request line")),
    (b"G@T / HTTP/1.1\r\n\r\n", (BadRequest, "bad_request_line", "malformed request line")),
    (b"GET a/ HTTP/1.1\r\n\r\n", (BadRequest, "bad_request_line", "malformed request line")),
    (b"GET /\r\n\r\n", (BadRequest, "bad_request_line", "malformed request line")),
    ("GET /echo?name=Jos\u00e9 HTTP/1.1\r\n\r\n".encode(),   # raw UTF-8 is no URI, as Node answers
     (BadRequest, "bad_request_line", "malformed request line")),
    (b"GET ftp://host/echo HTTP/1.1\r\n\r\n", (BadRequest, "bad_request_line", "malformed request line")),
    (b"GET / HTTP/2.0\r\n\r\n",
     (VersionNotSupported, "http_version_not_supported", "HTTP/2.0 is not supported; use HTTP/1.1")),
    (b"GET / http/1.1\r\n\r\n", (BadRequest, "bad_request_line", "malformed HTTP version")),
    (b"GET / HTTP/1.10\r\n\r\n", (BadRequest, "bad_request_line", "malformed HTTP version")),
    (b"GET / HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",
     (BadRequest, "bad_header", "obsolete header line folding is not accepted")),
    (b"GET / HTTP/1.1\r\nX-A: 1\r\n\tfolded\r\n\r\n",
     (BadRequest, "bad_header", "obsolete header line folding is not accepted")),
    (b"GET / HTTP/1.1\r\nX-A 1\r\n\r\n", (BadRequest, "bad_header", "malformed header line")),
    (b"GET / HTTP/1.1\r\nX-A : 1\r\n\r\n", (BadRequest, "bad_header", "malformed header line")),
    (b"GET / HTTP/1.1\r\nX-A: 1\r\n  \r\n\r\n",
     (BadRequest, "bad_header", "obsolete header line folding is not accepted")),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\n",
     (BadRequest, "bad_content_length", "conflicting Content-Length headers")),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n",
     (BadRequest, "bad_content_length", "Content-Length must be 1 to 18 ASCII digits")),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1234567890123456789\r\n\r\n",
     (BadRequest, "bad_content_length", "Content-Length must be 1 to 18 ASCII digits")),
    (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
     (LengthRequired, "length_required",
      "send the body with a Content-Length; chunked bodies are not accepted")),
    (b"POST / HTTP/1.1\r\nHost: h\r\nTRANSFER-ENCODING: chunked\r\nContent-Length: 5\r\n\r\n",
     (LengthRequired, "length_required",
      "send the body with a Content-Length; chunked bodies are not accepted")),
])
def test_each_refusal_says_what_is_wrong(buffer, expected):
    """Bad header fields, request lines and Content-Lengths, and chunked bodies, are each refused
    with their own status, code and message."""
    assert refusal(buffer) == expected


def test_header_lines_are_limited_to_100_inclusive():
    """100 header lines are taken and 101 refused, whatever their size."""
    def head(count: int) -> bytes:
        return b"GET / HTTP/1.1\r\nHost: h\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(count - 1)) + b"\r\n"

    assert len(read(head(MAX_HEADER_COUNT)).headers) == 100
    assert refusal(head(MAX_HEADER_COUNT + 1)) == TOO_LARGE


def test_header_bytes_are_limited_to_15_kib_inclusive():
    """15 KiB of header lines with their CRLFs pass and one byte more does not; the request line
    and the final CRLF do not count."""
    line = b"GET /" + b"p" * 100 + b" HTTP/1.1\r\n"

    def head(header_bytes: int) -> bytes:  # header lines with their CRLFs, plus the blank line
        value = b"v" * (header_bytes - len(b"Host: h\r\nX-A: \r\n") - 2)
        return line + b"Host: h\r\nX-A: " + value + b"\r\n\r\n"

    assert len(read(head(MAX_HEADER_BYTES)).headers) == 2
    assert refusal(head(MAX_HEADER_BYTES + 1)) == TOO_LARGE
    # Only the header lines count: a long request line takes nothing from their budget.
    long_line = b"GET /" + b"p" * 8000 + b" HTTP/1.1\r\n"
    assert read(long_line + b"Host: h\r\nX-A: " + b"v" * (MAX_HEADER_BYTES - 18) + b"\r\n\r\n").target.startswith("/p")


def test_request_line_is_limited_to_8192_bytes_inclusive():
    """A request line of 8192 bytes passes, one of 8193 is 414, even before the head ends."""
    def line(size: int) -> bytes:
        return b"GET /" + b"a" * (size - len(b"GET / HTTP/1.1")) + b" HTTP/1.1"

    assert len(line(MAX_REQUEST_LINE)) == MAX_REQUEST_LINE
    assert read(line(MAX_REQUEST_LINE) + b"\r\nHost: h\r\n\r\n").method == "GET"
    # A longest allowed line whose header lines are still arriving is waited for.
    assert find_head(line(MAX_REQUEST_LINE) + b"\r\nX-A: 1\r\n") == -1
    assert refusal(line(MAX_REQUEST_LINE + 1) + b"\r\n\r\n") == URI_TOO_LONG


def test_an_unfinished_request_line_is_refused_once_it_cannot_fit():
    """An unfinished request line is 414 as soon as it cannot fit, and not a byte sooner."""
    def unfinished(size: int) -> bytes:
        return b"GET /" + b"a" * (size - 5)

    # 8193 bytes without CRLF may still be an 8192-byte line and its CR: wait.
    assert find_head(unfinished(MAX_REQUEST_LINE + 1)) == -1
    with pytest.raises(URITooLong) as raised:
        find_head(unfinished(MAX_REQUEST_LINE + 2))
    assert raised.value.message == URI_TOO_LONG[2]
    # A line of 8193 bytes and its CRLF is over the limit, though its CRLF has arrived.
    with pytest.raises(URITooLong):
        find_head(unfinished(MAX_REQUEST_LINE + 1) + b"\r\n" + b"X-A: 1\r\n")
    # A short request line, then header lines still arriving: no 414 however long they get.
    assert find_head(b"GET / HTTP/1.1\r\n" + b"X-A: " + b"v" * 9000) == -1
    # The first CRLF at the very start (an extra empty line) is a line end too.
    assert find_head(b"\r\n" + b"v" * 9000) == -1
    assert find_head(b"short") == -1


def test_an_unfinished_head_is_refused_past_the_head_limit():
    """An unfinished head is 431 once it is past the head limit, and not at the limit."""
    start = b"GET / HTTP/1.1\r\nX-A: "
    assert find_head(start + b"v" * (MAX_HEAD_BYTES - len(start))) == -1
    with pytest.raises(HeadersTooLarge) as raised:
        find_head(start + b"v" * (MAX_HEAD_BYTES - len(start) + 1))
    assert raised.value.message == TOO_LARGE[2]


def test_the_head_ends_at_the_first_blank_line_and_the_body_is_not_checked():
    """The head ends at the first blank line; the checks cover the whole head, its first and
    last bytes, and not the body after it."""
    first = b"POST /a HTTP/1.1\r\nContent-Length: 8\r\n\r\n"
    second = b"GET /b HTTP/1.1\r\n\r\n"
    assert find_head(first + b"\0\n\r\r\n\n\0\n" + second) == len(first)
    assert find_head(first + second) == len(first)  # pipelined: the first head only
    assert find_head(b"\r\n\r\n\0\n") == 4  # a blank line at once (the connection skips one)
    # The checks cover the whole head, its last bytes and its first byte too.
    with pytest.raises(BadRequest, match="bare LF"):
        find_head(b"GET / HTTP/1.1\r\nX-A: abc\nd\r\n\r\n")
    with pytest.raises(BadRequest, match="NUL"):
        find_head(b"GET / HTTP/1.1\r\nX-A: abcd\0\r\n\r\n")
    with pytest.raises(BadRequest, match="NUL"):
        find_head(b"\0GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(BadRequest, match="bare LF"):
        find_head(b"\nGET / HTTP/1.1\r\n\r\n")
    assert find_head(b"\r\nGET / HTTP/1.1\r\n\r\n") == 20
    # Unfinished heads are checked as far as they have arrived.
    with pytest.raises(BadRequest, match="NUL"):
        find_head(b"GET / HTTP/1.1\r\nX-A: \0")
    with pytest.raises(BadRequest, match="bare LF"):
        find_head(b"GET / HTTP/1.1\nX-A: ")
    assert find_head(b"GET / HTTP/1.1\r\nX-A: 1\r\n") == -1


def test_a_complete_head_is_found_whatever_follows_it_and_an_unfinished_one_waits():
    first = b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 8\r\n\r\n"
    second = b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
    assert complete_head(bytearray(first + b"\0\n\r\r\n\n\0\n" + second)) == (len(first), parse_head(first))
    assert complete_head(bytearray(first[:-2])) is None
    with pytest.raises(BadRequest, match="NUL"):   # unfinished, checked as far as it has come
        complete_head(bytearray(first[:-4] + b"\0"))
    big = b"GET / HTTP/1.1\r\nHost: h\r\nX-Pad: " + b"p" * http11.MEMO_HEAD_BYTES + b"\r\n\r\n"
    assert complete_head(bytearray(big + second)) == (len(big), parse_head(big))
    # A body past the remembered size holding what a head's end or a NUL looks like: the small
    # head before it is the one found.
    body = b"b" * http11.MEMO_HEAD_BYTES + b"\0\r\n\r\n"
    assert complete_head(bytearray(first + body)) == (len(first), parse_head(first))


NUL = (BadRequest, "bad_header", "NUL bytes are not allowed in a request head")
BARE_LF = (BadRequest, "bad_header", "lines must end with CRLF; a bare LF is not accepted")
BARE_CR = (BadRequest, "bad_header", "a bare CR is not allowed in a request head")
BIG = b"GET / HTTP/1.1\r\nHost: h\r\nX-Pad: " + b"p" * http11.MEMO_HEAD_BYTES


@pytest.mark.parametrize("buffer,expected", [
    (b"GET / HTTP/1.1\r\nX-A: \0", NUL),                  # unfinished: as far as it has come
    (b"GET / HTTP/1.1\nX-A: ", BARE_LF),
    (BIG + b"\0\r\n\r\n", NUL),                            # past the remembered size
    (BIG + b"\n\r\n\r\n", BARE_LF),
    (BIG + b"\r\r\n\r\n", BARE_CR),
])
def test_heads_found_the_long_way_are_refused_as_the_remembered_ones_are(buffer, expected):
    with pytest.raises(BadRequest) as raised:
        complete_head(bytearray(buffer))
    assert (type(raised.value), raised.value.code, raised.value.message) == expected


def test_a_bare_cr_anywhere_in_the_head_is_refused():
    """A CR not followed by LF is refused wherever it is in the head."""
    for head in (b"GET / HTTP/1.1\r\nX-A: 1\r\r\n\r\n", b"GET /\r HTTP/1.1\r\n\r\n",
                 b"GET / HTTP/1.1\r\n\rX-A: 1\r\n\r\n"):
        with pytest.raises(BadRequest, match="bare CR"):
            parse_head(head)


def test_header_values_names_and_the_request_line_are_read_as_sent():
    """Every header line is read, values stripped of spaces and tabs only, names kept as sent,
    latin-1 text; the path is the target without its query."""
    head = read(b"POST /a/b?x=1&y=/2 HTTP/1.1\r\nHost: h\r\nX-Pad: \t v a \t\r\n"
                b"X-Empty:\r\nX-Latin: caf\xe9\r\nx-colon: a:b\r\n\r\n")
    assert (head.method, head.target, head.path) == ("POST", "/a/b?x=1&y=/2", "/a/b")
    assert head.headers == (("Host", "h"), ("X-Pad", "v a"), ("X-Empty", ""),
                            ("X-Latin", "caf\u00e9"), ("x-colon", "a:b"))
    assert read(b"GET / HTTP/1.1\r\nContent-Length: 3\r\nHost: h\r\n\r\n").length == 3  # the first line counts
    # An absolute-form target is read as sent (RFC 9112 §3.2.2: a server must accept it).
    assert read(b"GET http://h/a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n").target == "http://h/a?x=1"
    assert read(b"GET https://h/a HTTP/1.1\r\nHost: h\r\n\r\n").target == "https://h/a"
    # Optional whitespace is spaces and tabs (RFC 9110 §5.6.3): not form feeds, vertical tabs or
    # a latin-1 no-break space, and not an X either.
    odd = read(b"GET / HTTP/1.1\r\nHost: h\r\nX-A: \x0cv\x0b\r\nX-B: \xa0v\xa0\r\nX-C: Xv X\r\n\r\n")
    assert odd.headers[1:] == (("X-A", "\x0cv\x0b"), ("X-B", "\xa0v\xa0"), ("X-C", "Xv X"))


def test_a_head_seen_lately_is_read_from_memory_and_cannot_be_changed_by_its_user():
    """An agent's panel sends the same head on every request: the same bytes give the very Head
    read before (no parse), which is immutable, headers included, since requests share it. A
    head that fails its checks is refused every time, and heads over the size remembered are
    read afresh."""
    data = b"POST /get-contact HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\n"
    head = parse_head(data)
    assert parse_head(bytes(bytearray(data))) is head
    assert isinstance(head.headers, tuple)
    with pytest.raises((AttributeError, TypeError)):
        head.headers.append(("X-Injected", "1"))  # type: ignore[attr-defined]
    bad = b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"
    for _ in range(2):
        with pytest.raises(BadRequest, match="exactly one Host"):
            parse_head(bad)
    edge = b"GET / HTTP/1.1\r\nHost: h\r\nX-Pad: \r\n\r\n"
    edge = edge[:-4] + b"p" * (http11.MEMO_HEAD_BYTES - len(edge)) + b"\r\n\r\n"
    assert len(edge) == http11.MEMO_HEAD_BYTES and parse_head(edge) is parse_head(bytes(bytearray(edge)))
    big = b"GET / HTTP/1.1\r\nHost: h\r\nX-Pad: " + b"p" * http11.MEMO_HEAD_BYTES + b"\r\n\r\n"
    assert parse_head(big) == parse_head(big) and parse_head(big) is not parse_head(big)
    assert http11._remembered_head.cache_info().maxsize == http11.MEMO_HEADS


@pytest.mark.parametrize("head, message", [
    (b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", "an HTTP/1.1 request needs a Host header"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", "send exactly one Host header"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHOST: a\r\n\r\n", "send exactly one Host header"),
    (b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", "send exactly one Host header"),
], ids=["none", "two", "two-alike", "two-in-1.0"])
def test_a_request_without_one_host_is_refused(head, message):
    """RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host and for any request with two
    (which one a proxy in front routed by is unknowable)."""
    assert refusal(head) == (BadRequest, "bad_host", message)


def test_an_http_1_0_request_may_come_without_host():
    """HTTP/1.0 has no Host requirement (RFC 9112 §3.2 asks it of HTTP/1.1 only)."""
    assert read(b"GET /a HTTP/1.0\r\n\r\n").path == "/a"
    assert read(b"GET /a HTTP/1.0\r\nHost: h\r\n\r\n").headers == (("Host", "h"),)


@pytest.mark.parametrize("version,connection,keep_alive", [
    ("HTTP/1.1", None, True),
    ("HTTP/1.1", "close", False),
    ("HTTP/1.1", "Keep-Alive, CLOSE", False),
    ("HTTP/1.1", "keep-alive", True),
    ("HTTP/1.0", None, False),
    ("HTTP/1.0", "Keep-Alive", True),
    ("HTTP/1.0", "keep-alive, close", False),
    ("HTTP/1.0", "upgrade", False),
])
def test_keep_alive_follows_the_version_and_connection_header(version, connection, keep_alive):
    """Keep-alive follows the version's default and the Connection header, in any letter case."""
    extra = f"Connection: {connection}\r\n" if connection else ""
    head = read(f"GET / {version}\r\nHost: h\r\n{extra}\r\n".encode())
    assert head.keep_alive is keep_alive


@pytest.mark.parametrize("headers,length,expects", [
    ("", 0, False),
    ("Content-Length: 0\r\n", 0, False),
    ("Content-Length: 007\r\n", 7, False),
    ("content-LENGTH: 12\r\nContent-Length: 12\r\n", 12, False),  # the same length twice
    ("Content-Length: 5\r\nExpect: 100-Continue\r\n", 5, True),
    ("Content-Length: 1\r\nExpect: 100-continue\r\n", 1, True),
    ("Content-Length: 0\r\nExpect: 100-continue\r\n", 0, False),   # no body: nothing to wait for
    ("Expect: 100-continue\r\n", 0, False),
    ("Content-Length: 5\r\nExpect: 100-continue-please\r\n", 5, False),
    (f"Content-Length: {'9' * 18}\r\n", 10 ** 18 - 1, False),
])
def test_body_length_and_expect_continue(headers, length, expects):
    """The body's length (none, repeated alike, leading zeros, 18 digits) and whether the client
    waits for 100 Continue (only when a body is to come)."""
    head = read(f"POST / HTTP/1.1\r\nHost: h\r\n{headers}\r\n".encode())
    assert (head.length, head.expects_continue) == (length, expects)


def test_replies_are_framed_with_a_length_except_where_http_forbids_one():
    """Status line, Date, Server, Content-Length (not for 1xx, 204, 304), the reply's headers in
    order, Connection: close, and no body for HEAD."""
    reply = Reply(200, [("Content-Type", "text/plain"), ("X-A", "caf\u00e9\u2603")], b"hello")
    assert encode_reply(reply, "DATE", keep_alive=True) == (
        b"HTTP/1.1 200 OK\r\nDate: DATE\r\nServer: sfdcflex\r\nContent-Length: 5\r\n"
        b"Content-Type: text/plain\r\nX-A: caf\xe9?\r\n\r\nhello")
    assert encode_reply(reply, "DATE", keep_alive=False, head_only=True) == (
        b"HTTP/1.1 200 OK\r\nDate: DATE\r\nServer: sfdcflex\r\nContent-Length: 5\r\n"
        b"Content-Type: text/plain\r\nX-A: caf\xe9?\r\nConnection: close\r\n\r\n")
    framed = {status: b"Content-Length:" in encode_reply(Reply(status), "D", True)
              for status in (100, 101, 199, 200, 201, 204, 205, 303, 304, 305, 404)}
    assert framed == {100: False, 101: False, 199: False, 200: True, 201: True, 204: False,
                      205: True, 303: True, 304: False, 305: True, 404: True}


class _Clock:
    """time for http11 with a settable now, counting the dates it breaks down."""

    def __init__(self, now: float) -> None:
        self.now, self.formatted = now, 0

    def time(self) -> float:
        return self.now

    def gmtime(self, seconds: float) -> time.struct_time:
        self.formatted += 1
        return time.gmtime(seconds)


def test_the_date_is_an_imf_fixdate_made_once_a_second(monkeypatch):
    """The Date is an IMF-fixdate, formatted anew when the second changes and only then."""
    clock = _Clock(1_700_000_000.25)
    monkeypatch.setattr(http11, "time", clock)
    date = HttpDate()
    for now in (1_700_000_000.25, 1_700_000_000.75, 1_700_000_001.0, 951_782_400.0, 0.0, 1_704_067_199.5):
        clock.now = now
        assert date.now() == email.utils.formatdate(int(now), usegmt=True), now
    assert clock.formatted == 5  # .25 and .75 of one second share one text
    for _ in range(100):
        date.now()
    assert clock.formatted == 5
