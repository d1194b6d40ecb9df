"""What each part of a cached hit costs, warm (back to back) and cold (an agent's panel, every few
seconds), measured in one process.

    python -m sfdcflex.bench.parts [--samples 300] [--flush-mib 48]

A child serves the cached `get-contact` hit as `python -m sfdcflex.bench.cold` does (the
runtime's own parts, the panel's headers, a real `recv` and `send` on a socket pair), with each
part below wrapped in a timer: the time inside it, summed over its calls in the request. Each
request is timed once with the CPU's caches cold (after `--flush-mib` MiB are rewritten) and once
warm, right after; each figure is the median over `--samples` requests. `the rest` is the
request's whole time less its parts': the runtime's own steps between them (the dispatch, the
invocation, the handler's frame) and what the timers themselves cost (a few tenths of a µs each,
warm). The parts are the Functions emulation's own costs (the issue that asked for each to be
measured named the log line, Server-Timing, the Response, the event and the watchdog) beside
those any server of the integration would pay.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

HIT = "get-contact hit"
TOTAL, REST = "the whole request", "the rest"


def _targets(served_app) -> list[tuple[str, list[tuple[object, str]]]]:
    """Each part's name, and the attributes (owner, name) whose calls are its time."""
    import sfdcflex.runtime.app as app_module
    import sfdcflex.runtime.http.responder as responder_module
    from sfdcflex.bench import cold
    from sfdcflex.assembly import Services
    from sfdcflex.lookup import Lookup
    from sfdcflex.runtime.app import App
    from sfdcflex.runtime.http.connection import ConnectionPool
    from sfdcflex.runtime.invocation import Invocation
    from sfdcflex.runtime.slots import Slots
    from sfdcflex.runtime.timing import ServerTiming

    handler_globals = served_app.routes["/get-contact"].handler.__globals__
    return [
        ("recv", [(cold, "receive")]),
        ("head read (strict HTTP/1.1)", [(ConnectionPool, "take_complete")]),
        ("event (query, JSON body, headers)", [(app_module, "build_event")]),
        ("concurrency slot", [(Slots, "try_take"), (Invocation, "release_slot")]),
        ("watchdog (time limit)", [(served_app._watchdog, "arm"), (served_app._watchdog, "disarm")]),
        ("Flex token (from memory)", [(Services, "remembered_agent")]),
        ("caller's phone number", [(_Globals(handler_globals), "parse_phone")]),
        ("card (link check, cache)", [(Lookup, "contact_json")]),
        ("Server-Timing and the reply", [(ServerTiming, "json_response"), (app_module, "reply_for")]),
        ("CORS headers", [(App, "_add_cors")]),
        ("metrics", [(served_app, "_observe")]),
        ("log line", [(app_module, "log_line")]),
        ("reply's bytes", [(responder_module, "encode_reply")]),
        ("send", [(responder_module, "send_reply")]),
    ]


class _Globals:
    """A module's globals as attributes (a function file is loaded by path, not imported)."""

    def __init__(self, namespace: dict) -> None:
        object.__setattr__(self, "_namespace", namespace)

    def __getattr__(self, name: str):
        return self._namespace[name]

    def __setattr__(self, name: str, value: object) -> None:
        self._namespace[name] = value


def _timed(spent: dict[str, int], part: str, function: Callable) -> Callable:
    clock = time.perf_counter_ns

    def timed(*args, **kwargs):
        started = clock()
        try:
            return function(*args, **kwargs)
        finally:
            spent[part] += clock() - started
    return timed


def measure(samples: int, flush_mib: int, headers: dict[str, str]) -> dict[str, dict[str, float]]:
    """Part -> {"cold": µs, "warm": µs}, medians over `samples` hits each way."""
    from .cold import serve_once, serving
    with serving(headers) as (served, app):
        client, data, serve = served[HIT]
        spent: dict[str, int] = defaultdict(int)
        parts = _targets(app)
        for part, attributes in parts:
            for owner, name in attributes:
                setattr(owner, name, _timed(spent, part, getattr(owner, name)))
        for _ in range(3):   # the timers' own code run once
            serve_once(client, data, serve)
        junk, zeros = bytearray(flush_mib << 20), bytes(flush_mib << 20)
        found: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"cold": [], "warm": []})
        for _ in range(samples):
            for kind in ("cold", "warm"):
                if kind == "cold":
                    junk[:] = zeros
                    time.sleep(0.001)
                spent.clear()
                total = serve_once(client, data, serve)
                found[TOTAL][kind].append(total)
                for part, _ in parts:
                    found[part][kind].append(spent[part] / 1000)
                found[REST][kind].append(total - sum(spent.values()) / 1000)
    order = [part for part, _ in parts] + [REST, TOTAL]
    return {part: {kind: round(statistics.median(found[part][kind]), 1) for kind in ("cold", "warm")}
            for part in order}


def report(rows: dict[str, dict[str, float]], samples: int) -> str:
    lines = [f"a cached get-contact hit, part by part, in process: medians of {samples} requests each way,",
             "in µs (each part's own median: the parts need not add up to the whole)",
             f"{'part':<38}{'warm':>8}{'cold':>8}{'cold - warm':>13}"]
    for part, row in rows.items():
        if part == TOTAL:
            lines.append("-" * 67)
        lines.append(f"{part:<38}{row['warm']:>8.1f}{row['cold']:>8.1f}{row['cold'] - row['warm']:>13.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sfdcflex.bench.parts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--flush-mib", type=int, default=48, help="bytes rewritten before each cold request")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--headers", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.samples < 1 or args.flush_mib < 0:
        parser.error("--samples must be 1 or more, --flush-mib 0 or more")
    if args.child:   # the timers replace the runtime's functions: never in the caller's process
        print(json.dumps(measure(args.samples, args.flush_mib, json.loads(args.headers))))
        return 0
    from .calls import PANEL_HEADERS
    from .servers import PROJECT_ROOT, child_environment
    with tempfile.TemporaryDirectory(prefix="sfdcflex-parts-") as folder:
        done = subprocess.run([sys.executable, "-m", "sfdcflex.bench.parts", "--child",
                               "--samples", str(args.samples), "--flush-mib", str(args.flush_mib),
                               "--headers", json.dumps(PANEL_HEADERS)],
                              cwd=PROJECT_ROOT,
                              env={**child_environment(Path(folder)), "PYTHONPATH": str(PROJECT_ROOT)},
                              capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"the parts child failed:\n{done.stderr[-2000:]}")
    print(report(json.loads(done.stdout.strip().splitlines()[-1]), args.samples))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
