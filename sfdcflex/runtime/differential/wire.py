"""Requests sent byte for byte over a socket, and answers read back and normalised.

A raw socket, not urllib: the corpus holds what a client library would tidy up (a raw UTF-8 target,
a fragment, an absolute-form target, HTTP/1.1 without Host, repeated and odd-cased headers).
"""
from __future__ import annotations

import base64
import json
import socket
import time
from dataclasses import dataclass, field

from ..signature import compute_signature

SERVER = "{server}"   # the answering server's host:port, in recorded answers
SIGNATURE = "{signature}"   # a header value: replaced by a valid X-Twilio-Signature when sent


@dataclass(frozen=True)
class Case:
    """One request of the corpus. `body` is bytes held as latin-1 text in the fixture; `tags` name
    the deliberate differences it shows, and are the corpus's, not recorded."""

    name: str
    method: str = "GET"
    target: str = "/echo"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    host: bool = True
    version: str = "HTTP/1.1"
    tags: tuple[str, ...] = field(default=())

    def to_json(self) -> dict:
        return {"name": self.name, "method": self.method, "target": self.target,
                "headers": [list(pair) for pair in self.headers], "body": self.body.decode("latin-1"),
                "host": self.host, "version": self.version}

    @classmethod
    def from_json(cls, data: dict) -> Case:
        return cls(data["name"], data["method"], data["target"],
                   tuple((name, value) for name, value in data["headers"]),
                   data["body"].encode("latin-1"), data["host"], data["version"])


def encode_request(case: Case, hostport: str, auth_token: str) -> bytes:
    """The request's bytes as sent to a server at `hostport` (Connection: close ends each)."""
    lines = [f"{case.method} {case.target} {case.version}"]
    if case.host:
        lines.append(f"Host: {hostport}")
    for name, value in case.headers:
        if value == SIGNATURE:
            value = compute_signature(auth_token, f"http://{hostport}{case.target}", _form(case))
        lines.append(f"{name}: {value}")
    if case.body or case.method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(case.body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + case.body


def _form(case: Case) -> dict[str, str]:
    from urllib.parse import parse_qsl
    kind = next((v for k, v in case.headers if k.lower() == "content-type"), "")
    if kind.startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(case.body.decode("utf-8"), keep_blank_values=True))
    return {}


def send(case: Case, address: tuple[str, int], auth_token: str, timeout: float = 10.0) -> bytes:
    """Send one request on a new connection; every byte the server sent until it closed."""
    hostport = f"{address[0]}:{address[1]}"
    deadline = time.monotonic() + timeout
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(encode_request(case, hostport, auth_token))
        chunks = []
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def parse_answer(raw: bytes, head_only: bool) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, header pairs and body of one HTTP/1.1 response (chunked or not)."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1]) if lines[0] else 0
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    if head_only:
        return status, headers, b""
    if any(n.lower() == "transfer-encoding" and "chunked" in v.lower() for n, v in headers):
        rest = _dechunk(rest)
    else:
        length = next((v for n, v in headers if n.lower() == "content-length"), None)
        rest = rest[:int(length)] if length is not None else rest
    return status, headers, rest


def _dechunk(data: bytes) -> bytes:
    out, index = [], 0
    while True:
        end = data.find(b"\r\n", index)
        size = int(data[index:end].split(b";")[0] or b"0", 16)
        if size == 0:
            return b"".join(out)
        out.append(data[end + 2:end + 2 + size])
        index = end + 2 + size + 2


def normalise(raw: bytes, head_only: bool, hostport: str, ignored: frozenset[str],
              replacements: dict[str, str]) -> dict:
    """An answer as the fixture keeps it: status, headers (lower-case names, in order, without
    the framing ones in `ignored`), and the body as text or base64, with `hostport` and the
    other `replacements` made stable."""
    status, headers, body = parse_answer(raw, head_only)
    swaps = {hostport: SERVER, **replacements}

    def stable(text: str) -> str:
        for old, new in swaps.items():
            text = text.replace(old, new)
        return text

    kept = [[name.lower(), stable(value)] for name, value in headers if name.lower() not in ignored]
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return {"status": status, "headers": kept, "body_base64": base64.b64encode(body).decode()}
    return {"status": status, "headers": kept, "body": stable(text)}


def body_of(answer: dict) -> object:
    """The body to compare: parsed JSON when the answer says JSON, else text or bytes."""
    if "body_base64" in answer:
        return base64.b64decode(answer["body_base64"])
    kind = next((v for n, v in answer["headers"] if n == "content-type"), "")
    if "json" in kind and answer["body"]:
        try:
            return json.loads(answer["body"])
        except ValueError:
            return answer["body"]
    return answer["body"]
