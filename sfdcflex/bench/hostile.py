"""python -m sfdcflex.bench --hostile: the runtime under hostile load, beside the calm baseline.

Each run starts a fresh runtime and measures, in this order: a cached get-contact calm, then
while 4 clients stream 6 MiB bodies to /get-contact (each in a process of its own); the
runtime's RSS and threads with 60 connections holding 6 MiB bodies half-read (to /hello, a
user function, which takes 6 MiB), and with 3,000 idle connections; the IAM calls that 1,000
requests with one bad Flex token cost; and, with a second runtime started under a low
descriptor limit, its CPU while clients wait that it cannot accept. Figures are medians of
the runs. Only 127.0.0.1 is contacted; every child is killed at the end.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .load import run_load
from .calls import contact_request, fetch, link_agent
from .servers import (CACHE_SIZE, MISS_CONTACTS, Child, StandIns, child_environment, contact_phone,
                      prepare_runtime_folder, runtime_argv)

MIB = 1024 * 1024
BIG_BODY = 6 * MIB
STREAMERS = 4
HELD_BODIES = 60
IDLE_CONNECTIONS = 3000
BAD_TOKEN_REQUESTS = 1000
LOW_NOFILE = 64
WAITING_CLIENTS = 200
SETTLE_SECONDS = 1.0      # for the server to read what was sent before RSS is read
CPU_SECONDS = 3.0         # CPU is averaged over this long
MIN_SECONDS = 1.0         # the shortest latency measurement: fewer requests make a poor p99
STREAM_EXTRA_SECONDS = 1.0   # the streams start before the measurement and outlast it


def _status(pid: int) -> dict[str, int]:
    """VmRSS (KiB) and Threads from /proc/<pid>/status."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "Threads"):
            fields[name] = int(value.split()[0])
    return fields


def _cpu_seconds(pid: int) -> float:
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _cpu_percent(pid: int, seconds: float) -> float:
    before, started = _cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)  # what is measured is the CPU the server uses in this time
    return 100 * (_cpu_seconds(pid) - before) / (time.monotonic() - started)


def _address(url: str) -> tuple[str, int]:
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    return host, int(port)


def _lookup_latency(url: str, token: str, seconds: float) -> dict[str, float]:
    hit = contact_request(token, contact_phone(0))
    result = run_load(url, lambda: hit, connections=1, duration=seconds)
    return {"p50_ms": result.p50_ms, "p99_ms": result.p99_ms, "errors": result.errors}


def stream_bodies(url: str, seconds: float, size: int) -> dict[str, int]:
    """One attacker: POST 6 MiB bodies to /get-contact back to back, each on a new connection."""
    head = (b"POST /get-contact HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % size)
    body = b'{"Token": "' + b"A" * (size - 13) + b'"}'
    statuses: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(_address(url), timeout=10) as sock:
                sock.sendall(head + body)
                status = sock.recv(12)[9:12].decode() or "closed"
        except OSError as error:
            status = type(error).__name__
        statuses[status] = statuses.get(status, 0) + 1
    return statuses


def _under_streams(url: str, token: str, seconds: float, pycache: Path) -> dict:
    argv = [sys.executable, "-m", "sfdcflex.bench.hostile", "--stream", url, "--seconds",
            str(seconds + STREAM_EXTRA_SECONDS), "--size", str(BIG_BODY)]
    streamers = [subprocess.Popen(argv, stdout=subprocess.PIPE, env=child_environment(pycache))
                 for _ in range(STREAMERS)]
    try:
        time.sleep(SETTLE_SECONDS / 2)  # what is measured is the load once the streams flow
        latency = _lookup_latency(url, token, seconds)
        statuses: dict[str, int] = {}
        for streamer in streamers:
            out, _ = streamer.communicate(timeout=seconds + 30)
            for status, count in json.loads(out or b"{}").items():
                statuses[status] = statuses.get(status, 0) + count
    finally:
        for streamer in streamers:
            streamer.kill()
            streamer.wait()
    return dict(latency, streamed=statuses)


def _connect_many(url: str, count: int, timeout: float = 1.0) -> list[socket.socket]:
    def connect(_: int) -> socket.socket | None:
        try:
            return socket.create_connection(_address(url), timeout=timeout)
        except OSError:
            return None  # past the listen backlog: the kernel drops the handshake
    with ThreadPoolExecutor(32) as pool:
        return [s for s in pool.map(connect, range(count)) if s is not None]


def _held_bodies(url: str, pid: int) -> dict:
    """60 connections each send a 6 MiB body but its last byte, then wait."""
    head = b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % BIG_BODY
    socks = _connect_many(url, HELD_BODIES, timeout=10)
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda s: s.sendall(head + b" " * (BIG_BODY - 1)), socks))
        time.sleep(SETTLE_SECONDS)  # what is measured is the state once the server has read it all
        return dict(_status(pid), held=len(socks))
    finally:
        for sock in socks:
            sock.close()


def _idle_connections(url: str, pid: int) -> dict:
    socks = _connect_many(url, IDLE_CONNECTIONS)
    try:
        time.sleep(SETTLE_SECONDS)  # what is measured is the state once the server took its share
        return dict(_status(pid), connected=len(socks))
    finally:
        for sock in socks:
            sock.close()


def _bad_token_calls(url: str, standins: StandIns) -> dict:
    bad = contact_request("not-a-flex-token", contact_phone(0))
    before = standins.calls()["iam"].get("validate", 0)
    result = run_load(url, lambda: bad, connections=8, duration=60, max_requests=BAD_TOKEN_REQUESTS)
    after = standins.calls()["iam"].get("validate", 0)
    return {"requests": result.ok + result.errors, "iam_calls": after - before}


def _at_the_fd_limit(argv: list[str], folder: Path) -> dict:
    """A runtime limited to 64 descriptors while 200 clients wait: its CPU, then recovery."""
    limited = [sys.executable, "-m", "sfdcflex.bench.hostile", "--nofile", str(LOW_NOFILE), "--", *argv]
    log = folder / "limited.log"
    child = Child(limited, folder / "pycache", log=log)
    try:
        url = child.wait_for_url()
        idle_cpu = _cpu_percent(child.pid, CPU_SECONDS)
        socks = _connect_many(url, WAITING_CLIENTS)
        for sock in socks:
            sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        cpu = _cpu_percent(child.pid, CPU_SECONDS)
        for sock in socks:
            sock.close()
        return {"idle_cpu_percent": idle_cpu, "cpu_percent": cpu, "waiting": len(socks),
                "accept_failures_logged": log.read_text(errors="replace").count("cannot accept"),
                "recovered_in_s": _seconds_to_answer(url)}
    finally:
        child.kill()


def _seconds_to_answer(url: str, limit: float = 15.0) -> float:
    """How long until the server answers again once the clients have gone (-1: not in time)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        with contextlib.suppress(OSError, RuntimeError):
            if fetch(url, "GET", "/hello")[0] == 200:
                return time.monotonic() - started
        time.sleep(0.05)  # polling with a deadline: the server has no event to wait on
    return -1.0


def one_run(folder: Path, standins: StandIns, argv: list[str], token: str, seconds: float) -> dict:
    child = Child(argv, folder / "pycache", log=folder / "runtime.log")
    try:
        url = child.wait_for_url()
        link_agent(url, token)
        calm = dict(_status(child.pid), **_lookup_latency(url, token, seconds))
        return {"calm": calm, "streams": _under_streams(url, token, seconds, folder / "pycache"),
                "held_bodies": _held_bodies(url, child.pid),
                "idle_connections": _idle_connections(url, child.pid),
                "bad_token": _bad_token_calls(url, standins),
                "fd_limit": _at_the_fd_limit(argv, folder)}
    finally:
        child.kill()


def _medians(runs: list[dict]) -> dict:
    """The median of every number over the runs, in the runs' own shape."""
    first = runs[0]
    if isinstance(first, dict):
        return {key: _medians([run[key] for run in runs]) for key in first
                if all(key in run for run in runs)}
    if isinstance(first, (int, float)):
        return statistics.median(runs)
    return first


def run_hostile(runs: int, seconds: float) -> dict:
    _raise_nofile(IDLE_CONNECTIONS + 512)
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sfdcflex-hostile-")))
        standins = StandIns(MISS_CONTACTS, folder / "pycache")
        stack.callback(standins.kill)
        env_file, functions = prepare_runtime_folder(folder, standins.settings, CACHE_SIZE)
        argv = runtime_argv(env_file, functions)
        token = standins.token()
        results = [one_run(folder, standins, argv, token, seconds) for _ in range(runs)]
    return {"runs": runs, "seconds": seconds, "medians": _medians(results), "each": results}


def _raise_nofile(wanted: int) -> None:
    """The bench itself holds 3,000 client sockets: raise the soft descriptor limit if needed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


def format_hostile(report: dict) -> str:
    m = report["medians"]
    calm, streams = m["calm"], m["streams"]
    fd = m["fd_limit"]
    return "\n".join([
        f"hostile load: medians of {report['runs']} runs, fresh runtime each run",
        f"{'':<44}{'calm':>12}{'hostile':>12}",
        f"{f'cached get-contact p50 ms ({STREAMERS} streams)':<44}{calm['p50_ms']:>12.2f}{streams['p50_ms']:>12.2f}",
        f"{f'cached get-contact p99 ms ({STREAMERS} streams)':<44}{calm['p99_ms']:>12.2f}{streams['p99_ms']:>12.2f}",
        f"{f'RSS MiB, {HELD_BODIES} held bodies':<44}{calm['VmRSS'] / 1024:>12.1f}{m['held_bodies']['VmRSS'] / 1024:>12.1f}",
        f"{f'threads, {HELD_BODIES} held bodies':<44}{calm['Threads']:>12.0f}{m['held_bodies']['Threads']:>12.0f}",
        f"{f'RSS MiB, {IDLE_CONNECTIONS:,} idle connections':<44}{calm['VmRSS'] / 1024:>12.1f}{m['idle_connections']['VmRSS'] / 1024:>12.1f}",
        f"{f'threads, {IDLE_CONNECTIONS:,} idle connections':<44}{calm['Threads']:>12.0f}{m['idle_connections']['Threads']:>12.0f}",
        f"{f'CPU % at the descriptor limit ({LOW_NOFILE} fds)':<44}{fd['idle_cpu_percent']:>12.1f}{fd['cpu_percent']:>12.1f}",
        f"IAM calls for {m['bad_token']['requests']:.0f} requests with one bad token: "
        f"{m['bad_token']['iam_calls']:.0f}",
        f"streamed bodies answered (run 1): {report['each'][0]['streams']['streamed']}",
        f"bodies of {BIG_BODY / MIB:g} MiB; connections taken of {IDLE_CONNECTIONS:,}: "
        f"{m['idle_connections']['connected']:.0f}; held bodies: {m['held_bodies']['held']:.0f}",
        f"at the fd limit: {fd['accept_failures_logged']:.0f} accept failures logged, answering "
        f"again {fd['recovered_in_s']:.2f} s after the clients left"])


def run_hostile_report(args: argparse.Namespace) -> int:
    """The --hostile hook of bench/main.py: --rounds runs (default 3), --duration s per latency."""
    report = run_hostile(args.rounds, max(args.duration, MIN_SECONDS))
    print(format_hostile(report))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The bench's helper processes: a body streamer, or a runtime under a descriptor limit."""
    parser = argparse.ArgumentParser(prog="python -m sfdcflex.bench.hostile")
    parser.add_argument("--stream", metavar="URL")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--size", type=int, default=BIG_BODY)
    parser.add_argument("--nofile", type=int)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.stream:
        print(json.dumps(stream_bodies(args.stream, args.seconds, args.size)), flush=True)
        return 0
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, args.nofile))
    os.execv(command[0], command)
    return 1


if __name__ == "__main__":
    sys.exit(main())
