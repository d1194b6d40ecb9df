"""A Sender that answers from a script, in process: for tests of a client's own logic (its status
table, what it encodes, which error it raises) without a socket. The wire is tested against the
stand-ins."""
from __future__ import annotations

import json
from dataclasses import dataclass

from sfdcflex.clients.pool import RawReply


@dataclass(frozen=True)
class Sent:
    """One request a client sent: what `Sender.send` was given."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    timeout: float
    idempotent: bool


class ScriptedSender:
    """Answers each call with the next scripted reply (or raises it, if it is an exception)."""

    def __init__(self, *replies: RawReply | BaseException) -> None:
        self.replies = list(replies)
        self.sent: list[Sent] = []

    def answer(self, status: int, body: object = None, headers: dict[str, str] | None = None) -> None:
        """Script one more reply; a body that is not bytes is sent as JSON."""
        if not isinstance(body, bytes):
            body = b"" if body is None else json.dumps(body).encode()
        self.replies.append(RawReply(status, headers or {}, body))

    def send(self, method: str, url: str, headers: dict[str, str], body: bytes | None, *,
             timeout: float, idempotent: bool) -> RawReply:
        self.sent.append(Sent(method, url, dict(headers), body, timeout, idempotent))
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply
