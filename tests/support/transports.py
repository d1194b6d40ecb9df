"""Transports for the clients' tests: the real pooled one, watched."""
from __future__ import annotations

from sfdcflex.clients.pool import Transport


class TimeoutsSeen(Transport):
    """The real pooled transport (real sockets), noting each call's timeout: for tests of the
    clients' default timeouts."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float] = []

    def send(self, method, url, headers, body, *, timeout, idempotent):
        self.timeouts.append(timeout)
        return super().send(method, url, headers, body, timeout=timeout, idempotent=idempotent)
