"""The command-line options that bound the HTTP server (one per ServerLimits field)."""
from __future__ import annotations

import argparse

from .runtime.http.limits import ServerLimits

MIB = 1024 * 1024


def add_server_limits(parser: argparse.ArgumentParser) -> None:
    defaults = ServerLimits()
    group = parser.add_argument_group("server bounds")
    group.add_argument("--max-connections", type=int, default=defaults.max_connections,
                       help=f"open connections at most; past it the one idle longest is closed "
                            f"for a new one, and new ones wait in the listen backlog only while "
                            f"every one is busy (default {defaults.max_connections})")
    group.add_argument("--max-connections-per-client", type=int,
                       default=defaults.max_connections_per_client,
                       help=f"open connections one client address may hold; past it its own "
                            f"longest-idle one is closed (0: no cap; behind a proxy every client "
                            f"has the proxy's address) (default {defaults.max_connections_per_client})")
    group.add_argument("--threads", type=int, default=None,
                       help="worker threads running requests (default: --max-concurrency + 8)")
    group.add_argument("--max-body-memory", type=int, default=defaults.max_body_memory // MIB,
                       help=f"MiB of request bodies held in memory at once; more goes to temporary "
                            f"files (default {defaults.max_body_memory // MIB})")
    group.add_argument("--keepalive-timeout", type=float, default=defaults.keepalive_timeout,
                       help=f"seconds an idle connection stays open (default {defaults.keepalive_timeout:g})")


def server_limits(args: argparse.Namespace) -> ServerLimits:
    """ServerLimits from parsed options; raises SystemExit (argparse style) on a bad value."""
    if args.max_connections < 1 or args.max_body_memory < 1 or args.keepalive_timeout <= 0:
        raise SystemExit("sfdcflex: --max-connections, --max-body-memory and --keepalive-timeout "
                         "must be positive")
    if args.max_connections_per_client < 0:
        raise SystemExit("sfdcflex: --max-connections-per-client must be 0 (no cap) or more")
    if args.threads is not None and args.threads <= args.max_concurrency:
        # One thread more than the cap at least, or nobody would be free to answer 429.
        raise SystemExit("sfdcflex: --threads must be larger than --max-concurrency")
    threads = args.max_concurrency + 8 if args.threads is None else args.threads
    return ServerLimits(max_connections=args.max_connections, threads=threads,
                        max_connections_per_client=args.max_connections_per_client,
                        max_body_memory=args.max_body_memory * MIB,
                        keepalive_timeout=args.keepalive_timeout, read_timeout=args.read_timeout)
