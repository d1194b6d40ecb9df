"""Hostile input: a seeded generator throws thousands of odd requests at every function.

Whatever arrives, the server answers with an honest 4xx (never a 500), never shows a
traceback, words every error as JSON {"error", "message"} (the OAuth redirect target answers
its small HTML page instead), logs no runtime failure, and still serves agents afterwards.
"""
from __future__ import annotations

import collections
import http.client
import json
import logging
import random
import socket
import urllib.parse

import pytest

SEED = 20240605
REQUESTS = 2400
ALICE, BOB = "alice@example.com", "bob@example.com"
FUNCTION_PATHS = ("/auth", "/oauth-callback", "/get-user", "/get-contact", "/unlink",
                  "/get-access-token", "/get-username", "/get-contact-account-data")
# The redirect target answers a browser, so its errors are a small HTML page, not JSON.
HTML_PATHS = ("/oauth-callback", "/get-access-token")
OTHER_PATHS = ("/", "//get-user", "/get-user/", "/GET-USER", "/functions/get-user.py",
               "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/get-user%00", "/assets/index.html",
               "/get-contact;jsessionid=1", "/%C3%A9t%C3%A9", "/" + "a" * 6000)
METHODS = ["POST"] * 12 + ["GET"] * 4 + ["OPTIONS", "HEAD", "PUT", "DELETE", "PATCH", "TRACE",
                                         "PROPFIND", "get"]
CONTENT_TYPES = ("application/json", "application/json; charset=utf-16", "text/plain", "",
                 "application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=latin-1",
                 "multipart/form-data; boundary=xyz", "application/xml", "application/vnd.api+json",
                 "a/b;;;;=", "text/plain; charset=\u00ff".encode().decode("latin-1"))
PHONES = (
    "+14155550101", "(415) 555-0101", "415.555.0101 ext. 12", "+44 (0)20 7946 0958",
    "\u0664\u0661\u0665\u0665\u0665\u0665\u0660\u0661\u0660\u0661",    # Arabic-Indic digits
    "\uff14\uff11\uff15\uff15\uff15\uff15\uff10\uff11\uff10\uff11",    # full-width digits
    "\u096a\u0967\u096b\u096b\u096b\u096b\u0966\u0967\u0966\u0967",    # Devanagari digits
    "1-800-FLOWERS", "415' OR Name != '", "4155550101' OR '1'='1", "{415} OR {*}", "415*",
    "\\'; DELETE FROM Contact --", 'FIND {"x"} IN ALL FIELDS', "415\x005550101", "+" * 20,
    "\U0001f4de 415 555 0101", "   ", "", "+", "00", "0044", "+999 555 0100", "x" * 70,
    "(((((((((((", "415\r\n555\r\n0101", "1" * 16, "+1 (415) 555-0101 x" + "9" * 20,
)
NON_STRINGS = (None, 4155550101, 4.1555e9, True, [], ["+14155550101"], {"$ne": ""}, {"a": [1, {"b": 2}]})


def _random_text(rng: random.Random, limit: int) -> str:
    alphabet = ("abcXYZ019 +-_.:/{}[]()'\"\\%&=?#\x00\x7f\u00e9\u00ff\u0100\u2028\ud7ff"
                "\U0001f600\u200b\ufeff")
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, limit)))


class Generator:
    """Seeded request bodies, headers, methods and paths; the same seed gives the same run."""

    def __init__(self, seed: int, good_token: str) -> None:
        self.rng = random.Random(seed)
        self.good_token = good_token

    def token(self) -> object:
        rng = self.rng
        roll = rng.random()
        if roll < 0.35:
            return self.good_token
        if roll < 0.5:
            return rng.choice(NON_STRINGS)
        if roll < 0.55:
            return "eyJ" + "A" * rng.choice((20_000, 70_000))
        return _random_text(rng, 60)

    def phone(self) -> object:
        rng = self.rng
        roll = rng.random()
        if roll < 0.6:
            return rng.choice(PHONES)
        if roll < 0.7:
            return rng.choice(NON_STRINGS)
        if roll < 0.75:
            return "9" * rng.randint(16, 20_000)
        return _random_text(rng, 30)

    def fields(self) -> dict:
        rng = self.rng
        fields: dict = {}
        if rng.random() < 0.9:
            fields["Token"] = self.token()
        if rng.random() < 0.8:
            fields["phone"] = self.phone()
        for name in ("country", "code", "state", "origin", "error", "error_description"):
            if rng.random() < 0.15:
                fields[name] = rng.choice((_random_text(rng, 12), "US", "gb", "ZZ", 7, ["US"], None,
                                           "https://flex.example.com", "access_denied"))
        if rng.random() < 0.1:
            fields[_random_text(rng, 8)] = _random_text(rng, 8)
        return fields

    def body(self) -> tuple[bytes, str]:
        """A body and the Content-Type to send it with (sometimes a wrong one)."""
        rng = self.rng
        kind = rng.choices(("json", "broken", "nested", "huge", "encoded", "form", "empty"),
                           (40, 12, 8, 1, 10, 14, 5))[0]
        fields = self.fields()
        text = json.dumps(fields)
        if kind == "json":
            body = text.encode()
        elif kind == "broken":
            body = rng.choice((text[:rng.randint(0, max(0, len(text) - 1))].encode(),
                               text.replace('"', "'", 1).encode(), b"{" + rng.randbytes(40),
                               b'{"Token": 1e999999, "phone": ' + b"1" * 5000 + b"}",
                               b'{"Token": "\\ud800", "phone": "\\u0000"}', b"[]", b"null", b'"x"',
                               json.dumps({"Token": self.good_token}).encode()[:-1]
                               + b', "code": "\\udfff", "state": "\\ud800x", "phone": "\\udbff"}'))
        elif kind == "nested":
            depth = rng.choice((50, 2_000, 100_000))
            body = rng.choice(("[" * depth + "]" * depth, '{"Token":' * depth + "1" + "}" * depth,
                               '{"phone": ' + "[" * depth + "]" * depth + "}")).encode()
        elif kind == "huge":
            size = rng.randint(512 * 1024, 1024 * 1024)
            body = rng.choice((json.dumps({"Token": "A" * size}).encode(),
                               json.dumps({"phone": "1" * size, "Token": self.good_token}).encode(),
                               rng.randbytes(size)))
        elif kind == "encoded":
            body = rng.choice((text.encode("utf-16"), text.encode("utf-32"),
                               json.dumps(fields, ensure_ascii=False).encode("latin-1", "replace"),
                               b"\xff\xfe" + text.encode(), text.encode()[:-1] + b"\xc3\x28}",
                               b'{"phone": "\xed\xa0\x80"}'))
        elif kind == "form":
            pairs = [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in fields.items()]
            body = urllib.parse.urlencode(pairs).encode()
            body = rng.choice((body, body + b"&Token=%ff%fe&phone=%", body + b"&&&==&;", body * 2))
        else:
            body = b""
        return body, rng.choice(CONTENT_TYPES) if rng.random() < 0.3 else _natural_type(kind)

    def headers(self, body: bytes, content_type: str) -> list[tuple[str, str | bytes]]:
        rng = self.rng
        headers: list[tuple[str, str | bytes]] = [("Host", "127.0.0.1")]
        if content_type:
            headers.append(("Content-Type", content_type))
        headers.append(("Content-Length", str(len(body))))
        roll = rng.random()
        if roll < 0.03:
            headers.append(("X-Huge", "h" * rng.choice((8_000, 20_000))))
        elif roll < 0.05:
            headers += [(f"X-Many-{i}", "v") for i in range(rng.choice((50, 120)))]
        elif roll < 0.15:
            headers += [("Accept", "text/html"), ("Accept", "application/json"),
                        ("Cookie", "a=1; b=\"x"), ("Cookie", rng.choice(("c=2", "=;=;")))]
        elif roll < 0.25:
            headers.append(("X-Odd", bytes(rng.randrange(0x80, 0x100) for _ in range(30))))
            origin = rng.choice(("https://flex.example.com", "null", "https://evil.example"))
            headers.append(("Origin", origin))
        elif roll < 0.28:
            headers.append((b"X-\xe9\xe8", "odd name"))
        return headers

    def request(self) -> tuple[str, str, list, bytes]:
        rng = self.rng
        path = rng.choice(FUNCTION_PATHS) if rng.random() < 0.85 else rng.choice(OTHER_PATHS)
        if rng.random() < 0.2:
            path += "?" + rng.choice((urllib.parse.urlencode({"Token": str(self.token()),
                                                               "phone": str(self.phone())}),
                                      "%ff%fe=%00", "code=x&state=" + "y" * 300, "error=access_denied",
                                      "a=1&a=2&a=3", "Token"))
        body, content_type = self.body()
        return rng.choice(METHODS), path, self.headers(body, content_type), body


def _natural_type(kind: str) -> str:
    return "application/x-www-form-urlencoded" if kind == "form" else "application/json"


def _send(host: str, connection: http.client.HTTPConnection | None, method: str, path: str,
          headers: list, body: bytes) -> tuple[http.client.HTTPConnection, int, dict, bytes]:
    """One request with exactly these header lines (duplicates kept), reconnecting when needed."""
    connection = connection or http.client.HTTPConnection(host, timeout=20)
    connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for name, value in headers:
        connection.putheader(name, value)
    connection.endheaders(body)
    reply = connection.getresponse()
    data = reply.read()
    answer = reply.status, {k.lower(): v for k, v in reply.getheaders()}, data
    if reply.will_close:
        connection.close()
        connection = None
    return connection, *answer


def refused_before_body(path: str, headers: list) -> bool:
    """Whether the server rejects this request from its request line or headers alone."""
    names = [name.encode("latin-1") if isinstance(name, str) else name for name, _ in headers]
    size = sum(len(name) + len(value) + 4 for name, value in headers)
    return (len(path) > 8000 or size > 15 * 1024 or len(headers) >= 100
            or any(not name.isascii() for name in names))


def answer_problem(method: str, path: str, status: int, content_type: str, body: bytes) -> str | None:
    """What is wrong with an answer to hostile input, or None when it is what a user may expect."""
    if status >= 500 and status != 505:
        return f"{status} {body[:120]!r}"
    if b"Traceback" in body or b'File "' in body:
        return f"traceback in a {status} body"
    if status < 400 or method == "HEAD" or not body:
        return None
    if content_type.startswith("text/html"):
        return None if path.split("?")[0] in HTML_PATHS else f"HTML error page on {path[:40]}"
    if not content_type.startswith("application/json"):
        return f"{status} answered as {content_type!r}"
    try:
        error = json.loads(body)
    except ValueError:
        return f"{status} body is not JSON"
    if not (isinstance(error, dict) and isinstance(error.get("error"), str)
            and isinstance(error.get("message"), str)):
        return f"{status} JSON without error and message"
    return None


def _raw(host: str, data: bytes, half_close: bool = False) -> tuple[int | None, str, bytes]:
    """Send raw bytes; return the final status (None when the server just closed), type and body."""
    address, port = host.rsplit(":", 1)
    with socket.create_connection((address, int(port)), timeout=10) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            received += chunk
    while received.startswith(b"HTTP/1.1 100 "):
        received = received.split(b"\r\n\r\n", 1)[1]
    if not received:
        return None, "", b""
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    length = int(fields.get("content-length", len(body)))
    return int(lines[0].split(" ")[1]), fields.get("content-type", ""), body[:length]


GOOD = b'{"Token": "x", "phone": "+14155550101"}'
RAW_REQUESTS = [  # (bytes, status expected or None when the server should just close)
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /get-user HTTP/2.0\r\n\r\n", 505),
    (b"GET /get-user HTTX/1.1\r\n\r\n", 400),
    (b"GET get-user HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET\t/get-user\tHTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"POST /get-user HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
    (b"POST /get-user HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400),
    (b"POST /get-user HTTP/1.1\r\nHost: x\r\nContent-Length: 7000000\r\n\r\n", 413),
    (b"POST /get-user HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 411),
    (b"POST /get-user HTTP/1.1\r\nHost: x\r\nX-A: a\r\n folded\r\nContent-Length: 0\r\n\r\n", 400),
    (b"POST /get-user HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400),
    (b"POST /get-user HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(101)) + b"\r\n", 431),
    (b"POST /get-user HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 16_000 + b"\r\n\r\n", 431),
    (b"GET /get\x00user HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400),  # NUL: RFC 9110 §5.5
    (b"get /get-user HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405),
    (b"POST /get-user HTTP/1.0\nContent-Length: %d\n\n" % len(GOOD) + GOOD, 400),  # bare LF
    (b"\r\n\r\nGET /get-user HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"POST /get-contact HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\n"
     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(GOOD) + GOOD, 403),
    (b"POST /get-user HTTP/1.1\r\nHost: x\r\nX-Odd: \x80\xff\xfe\x00\x01\r\nConnection: close\r\n"
     b"Content-Length: 2\r\n\r\n{}", 400),
    (b"POST /get-user HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"Token\"", None),
    (b"POST /get-user HTTP/1.1\r\nHost: x\r\nContent-Le", None),
    (b"POST /get-user HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
     b"POST /get-user HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 400),
]


@pytest.mark.slow  # thousands of requests
def test_thousands_of_hostile_requests_get_honest_answers(crm, caplog):
    crm.link(ALICE)
    crm.link(BOB)
    generator = Generator(SEED, crm.token(ALICE))
    host = crm.url.split("//", 1)[1]
    statuses: collections.Counter = collections.Counter()
    problems: dict[str, list] = {}
    connection, relinks = None, 0
    caplog.set_level(logging.WARNING, logger="sfdcflex")
    for index in range(REQUESTS):
        method, path, headers, body = generator.request()
        try:
            connection, status, fields, data = _send(host, connection, method, path, headers, body)
        except (ConnectionError, http.client.HTTPException) as error:
            connection, status, fields, data = None, 0, {}, b""
            if isinstance(error, ConnectionError) and refused_before_body(path, headers):
                # The server answers 414/431/400 and closes while the client is still sending,
                # so the client may see a reset or broken pipe instead of the answer.
                statuses["closed while sending"] += 1
                continue
            problems.setdefault(f"connection lost: {type(error).__name__}", []).append(
                (index, method, path[:60], sorted({str(name) for name, _ in headers}), len(body)))
        statuses[status] += 1
        if path.startswith("/unlink") and data == b'{"unlinked":true}':
            crm.link(ALICE)  # keep Alice's lookups reaching Salesforce
            relinks += 1
        problem = status and answer_problem(method, path, status, fields.get("content-type", ""), data)
        if problem:
            problems.setdefault(problem, []).append((index, method, path[:60], body[:80]))
    for index in range(REQUESTS // 20):
        raw, expected = RAW_REQUESTS[index % len(RAW_REQUESTS)]
        status, content_type, data = _raw(host, raw, half_close=expected is None)
        statuses[status or "closed without an answer"] += 1
        problem = (f"raw {raw[:40]!r}: {status}, expected {expected}" if status != expected else
                   status and answer_problem("RAW", "/raw", status, content_type, data))
        if problem:
            problems.setdefault(problem, []).append(index)
    failures = sorted({r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR})
    print(f"\nhostile input: seed {SEED}, {sum(statuses.values())} requests, statuses "
          f"{sorted(statuses.items(), key=str)}, Alice unlinked and linked again {relinks} times")
    assert not problems, {problem: (len(cases), cases[:2]) for problem, cases in problems.items()}
    assert not failures, failures
    answer = crm.post("/get-user", {"Token": crm.token(BOB)})
    assert answer.status == 200 and answer.json()["sfdc_username"] == BOB
    assert sum(statuses.values()) >= 2000 and statuses[200] > 0 and statuses[400] > 0


def test_conflicting_content_lengths_are_refused(crm):
    # RFC 9112 §6.3: differing Content-Length values make the message invalid; a front end that
    # took the other value would see a different request boundary (request smuggling).
    host = crm.url.split("//", 1)[1]
    smuggled = b"GET /unlink HTTP/1.1\r\nHost: x\r\n\r\n"
    request = (b"POST /get-user HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nContent-Length: 2\r\n"
               b"Connection: close\r\n\r\n{}" % (2 + len(smuggled)) + smuggled)
    status, content_type, body = _raw(host, request)
    assert status == 400, (status, body)
    assert json.loads(body)["error"] == "bad_content_length", body
