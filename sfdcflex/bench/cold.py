"""A request that meets the CPU's caches cold, measured in one process: what a spaced request
(an agent's panel, every few seconds) pays above a back-to-back one, without the spaced mode's
noise.

    python -m sfdcflex.bench.cold [--samples 300] [--against REF]

The spaced rows of the side-by-side run net four figures of 200 requests each against one
another, and each moves by tens of µs from round to round. Here a child process serves requests
through the runtime's own parts (`ConnectionPool.take_complete`, `Responder.answer`, a real
`recv` and `send` on a socket pair) and through the bare `http.server` handler, in turns; before
each timed request it rewrites a buffer larger than the CPU's caches (`--flush-mib`, 48), and
times the same request again at once, warm. Each row is the median over `--samples` pairs; `net`
is what the issue's spaced goal counts: (cold - warm) of the hit, less (cold - warm) of the bare
server's same POST. The flush stands in for the idle milliseconds between a panel's requests: it
leaves out the kernel's side (the wake-up, `epoll`), which the spaced rows include.

With `--against REF`, the same child runs from that commit's tree too (this file, run by its path
with the other tree first on `PYTHONPATH`), the two taking turns, two children each.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCENARIOS = ("bare GET", "runtime hello", "bare POST", "get-contact hit")
NET_ROWS = ("get-contact hit", "bare POST")


# -- the child: serves and times, from whichever tree's sfdcflex it imports -------------------------

def _bare_handler(sock: socket.socket):
    """The bare baseline's handler on one socket, one request per `handle_one_request`."""
    from sfdcflex.bench.servers import BareHandler

    class OneAtATime(BareHandler):
        def __init__(self) -> None:   # BaseRequestHandler's, without handle(): requests one by one
            self.request, self.client_address, self.server = sock, ("127.0.0.1", 0), None
            self.setup()

    return OneAtATime()


def measure(samples: int, flush_mib: int, headers: dict[str, str]) -> dict[str, dict[str, float]]:
    """Serve each scenario `samples` times cold and as often warm; medians in µs. `headers`:
    the hit's (the parent's, so that every tree is sent the same request)."""
    with serving(headers) as (served, _):
        junk, zeros = bytearray(flush_mib << 20), bytes(flush_mib << 20)   # made once: no page faults
        times: dict[str, dict[str, list[float]]] = {name: {"cold": [], "warm": []} for name in served}
        for _ in range(samples):
            for name, (client, data, serve) in served.items():
                junk[:] = zeros   # out of the caches: what the idle milliseconds do
                time.sleep(0.001)
                times[name]["cold"].append(serve_once(client, data, serve))
                times[name]["warm"].append(serve_once(client, data, serve))
    return {name: {kind: round(statistics.median(values), 1) for kind, values in found.items()}
            for name, found in times.items()}


@contextlib.contextmanager
def serving(headers: dict[str, str]):
    """Each scenario, served in this process, and the runtime's App: name -> (the client's
    socket, the request's bytes, a callable that reads and answers it), each served three times
    already (the first hit is a miss). The runtime is `python run.py`'s app, its metrics and
    its log line (to nowhere) included, linked to one agent at the stand-ins; all of it is
    removed afterwards."""
    from sfdcflex.assembly import build_app
    from sfdcflex.bench.calls import link_agent
    from sfdcflex.bench.paced import encode
    from sfdcflex.bench.servers import StandIns, contact_phone, prepare_runtime_folder
    from sfdcflex.config import check_settings
    from sfdcflex.runtime.http.connection import Connection
    from sfdcflex.runtime.http.limits import ServerLimits
    from sfdcflex.runtime.http.server import FunctionsServer, start_in_thread
    from sfdcflex.runtime.http.sockets import listen, url_of
    from sfdcflex.runtime.logs import configure_logging

    with tempfile.TemporaryDirectory(prefix="sfdcflex-cold-") as name:
        folder = Path(name)
        standins = StandIns(1, folder / "pycache")
        try:
            env_file, functions = prepare_runtime_folder(folder / "runtime", standins.settings, 64)
            listening = listen(("127.0.0.1", 0))
            config = check_settings(env_file)
            # Each request's log line is made and written, as `python run.py` writes it (to nowhere).
            configure_logging(config.log_level, open(os.devnull, "w"), config.log_format)
            app = build_app(config, url_of(listening), functions=functions)
            server = FunctionsServer(listening, app, ServerLimits())
            start_in_thread(server)
            token = standins.token()
            link_agent(server.url, token)   # over HTTP, as a browser links; then in process
            body = json.dumps({"Token": token, "phone": contact_phone(0)}).encode()
            hit = encode(("POST", "/get-contact", body, headers), "127.0.0.1", close=False)
            hello = encode(("GET", "/hello", b"", {}), "127.0.0.1", close=False)
            ours, theirs = socket.socketpair()
            connection = Connection(ours, ("127.0.0.1", 0))
            bare_ours, bare_theirs = socket.socketpair()
            bare = _bare_handler(bare_ours)
            scratch = bytearray(64 * 1024)

            def runtime(data: bytes):
                def serve() -> None:
                    receive(connection, scratch)
                    server.connections.take_complete(connection)
                    server.responder.answer(connection)
                return theirs, data, serve

            served = {"bare GET": (bare_theirs, hello, bare.handle_one_request),
                      "runtime hello": runtime(hello),
                      "bare POST": (bare_theirs, hit, bare.handle_one_request),
                      "get-contact hit": runtime(hit)}
            for _ in range(3):
                for client, data, serve in served.values():
                    serve_once(client, data, serve)
            try:
                yield served, app
            finally:
                server.server_close()
                app.close()
        finally:
            standins.kill()


def receive(connection, scratch: bytearray) -> None:
    """The worker's read of a request that has arrived (one `recv`)."""
    count = connection.sock.recv_into(scratch)
    connection.buffer += memoryview(scratch)[:count]


def serve_once(client: socket.socket, data: bytes, serve) -> float:
    """Send one request, time its serving (from the server's recv to its send), read the answer."""
    from sfdcflex.bench.paced import response_complete
    client.sendall(data)
    started = time.perf_counter_ns()
    serve()
    elapsed = (time.perf_counter_ns() - started) / 1000
    client.settimeout(5)
    answer = b""
    while (status := response_complete(answer, False)) is None:
        answer += client.recv(65536)
    if status != 200:
        raise RuntimeError(f"not answered 200: {answer[:80]!r}")
    return elapsed


# -- the parent: children per tree, the table ---------------------------------------------------

def run_child(root: Path, samples: int, flush_mib: int, pycache: Path) -> dict:
    from .calls import PANEL_HEADERS
    from .servers import child_environment
    env = {**child_environment(pycache), "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child",
                           "--samples", str(samples), "--flush-mib", str(flush_mib),
                           "--headers", json.dumps(PANEL_HEADERS)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"the cold-path child at {root} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def net_us(rows: dict[str, dict[str, float]]) -> float:
    """The spaced goal's figure: the hit's cold premium less the bare POST's."""
    hit, bare = (rows[name] for name in NET_ROWS)
    return round((hit["cold"] - hit["warm"]) - (bare["cold"] - bare["warm"]), 1)


def combined(runs: list[dict]) -> dict[str, dict[str, float]]:
    """The median of the children's medians, per scenario and kind."""
    return {name: {kind: round(statistics.median(run[name][kind] for run in runs), 1)
                   for kind in ("cold", "warm")} for name in runs[0]}


def report(trees: dict[str, list[dict]], samples: int) -> str:
    lines = [f"a request that meets cold caches, in process: medians of {samples} cold/warm pairs",
             "per child (and of the children), in µs from the server's recv to its send",
             f"{'tree':<12}{'scenario':<18}{'cold':>8}{'warm':>8}{'cold - warm':>13}"]
    for tree, runs in trees.items():
        rows = combined(runs)
        for name in SCENARIOS:
            cold, warm = rows[name]["cold"], rows[name]["warm"]
            lines.append(f"{tree:<12}{name:<18}{cold:>8.1f}{warm:>8.1f}{cold - warm:>13.1f}")
        lines.append(f"{tree:<12}net (the hit's cold - warm less the bare POST's) {net_us(rows):.1f} µs "
                     f"(children: {', '.join(str(net_us(r)) for r in runs)})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sfdcflex.bench.cold", description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--flush-mib", type=int, default=48, help="bytes rewritten before each cold request")
    parser.add_argument("--against", metavar="REF", help="a commit to measure beside this tree")
    parser.add_argument("--children", type=int, default=2, help="children per tree, taking turns")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--headers", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.samples < 1 or args.flush_mib < 0 or args.children < 1:
        parser.error("--samples and --children must be 1 or more, --flush-mib 0 or more")
    if args.child:
        print(json.dumps(measure(args.samples, args.flush_mib, json.loads(args.headers))))
        return 0
    from . import against
    from .servers import PROJECT_ROOT
    with tempfile.TemporaryDirectory(prefix="sfdcflex-cold-") as folder, \
            (against.checked_out(args.against) if args.against else contextlib.nullcontext()) as reference:
        roots = {"this tree": PROJECT_ROOT}
        if reference is not None:
            roots[args.against] = reference.root
        trees: dict[str, list[dict]] = {name: [] for name in roots}
        for _ in range(args.children):
            for name, root in roots.items():
                trees[name].append(run_child(root, args.samples, args.flush_mib, Path(folder) / "pycache"))
    print(report(trees, args.samples))
    return 0


if __name__ == "__main__":
    # Run by its path (a child): its own folder first on sys.path would make the benchmark's
    # modules top-level names; the tree measured comes from PYTHONPATH.
    if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        del sys.path[0]
    raise SystemExit(main())
