"""The HTTP server's bounds, each a named setting with a default (waitress's adjustments)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerLimits:
    """The server's bounds; every one has a CLI option (see cli.py and the README)."""

    max_connections: int = 1000
    threads: int | None = None           # None: the app's max_concurrency + 8
    max_body_memory: int = 32 * 1024 * 1024
    spool_threshold: int = 512 * 1024    # waitress's inbuf_overflow: bigger bodies go to a file
    keepalive_timeout: float = 15.0
    read_timeout: float = 10.0
    send_timeout: float = 10.0
    linger_bytes: int = 16 * 1024 * 1024
    linger_seconds: float = 5.0
