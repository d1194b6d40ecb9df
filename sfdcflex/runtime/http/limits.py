"""The HTTP server's bounds, each a named setting with a default (waitress's adjustments)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerLimits:
    """The server's bounds; every one has a CLI option (see cli.py and the README)."""

    max_connections: int = 1000
    # Of those, one client address may hold this many (0: no cap; behind a proxy every client
    # has the proxy's address). A browser opens 6 per server.
    max_connections_per_client: int = 100
    # The runtime's default max_concurrency (30) and 8 more, so that past the cap a thread is
    # free to answer 429; a caller with another cap passes its own count.
    threads: int = 38
    max_body_memory: int = 32 * 1024 * 1024
    spool_threshold: int = 512 * 1024    # waitress's inbuf_overflow: bigger bodies go to a file
    keepalive_timeout: float = 15.0
    read_timeout: float = 10.0
    send_timeout: float = 10.0
    linger_bytes: int = 16 * 1024 * 1024
    linger_seconds: float = 5.0
