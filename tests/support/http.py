"""A small HTTP client for tests: one request on a new connection, the answer kept whole."""
from __future__ import annotations

import http.client
import json
from dataclasses import dataclass


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self):
        return json.loads(self.body)


def call(url: str, method: str = "GET", path: str = "/", *, body: object = None,
         headers: dict[str, str] | None = None, timeout: float = 10.0,
         source: str | None = None) -> Answer:
    """One request on a new connection; a dict body is sent as JSON; `source` is the client's
    own address (any of 127.0.0.0/8 on loopback), to be another client."""
    host = url.split("//", 1)[1]
    conn = http.client.HTTPConnection(host, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    headers = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=body, headers=headers)
        reply = conn.getresponse()
        return Answer(reply.status, reply.headers, reply.read())
    finally:
        conn.close()


def hops(answer: Answer) -> list[str]:
    """Its Server-Timing entries without their durations: name;desc="..." in order."""
    return [entry.split(";dur=")[0].strip() for entry in answer.headers["Server-Timing"].split(",")]


def refusal(answer: Answer) -> tuple[int, str, str]:
    """An error answer as (status, error code, message)."""
    return answer.status, answer.json()["error"], answer.json()["message"]
