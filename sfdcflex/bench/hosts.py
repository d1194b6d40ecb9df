"""python -m sfdcflex.bench.hosts: what each way of serving costs, measured side by side.

The built-in server, waitress and gunicorn (gthread, one worker, 8 threads) each serve the same
functions, with the stand-ins behind them as in the main benchmark. Each host also serves a
minimal WSGI hello of its own (the host's floor), so the adapter's cost is the difference.
waitress and gunicorn are installed with pip into a temporary folder: they are not
dependencies of sfdcflex. Reported per host and scenario: req/s and the server's CPU per
request (the host process and its children, from /proc), medians over rounds, hosts taking
turns. Only 127.0.0.1 is contacted; every child is killed at the end.
"""
from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .drivers import choose_client, drive, process_cpu_seconds
from .load import Request
from .calls import contact_request, link_agent
from .main import CACHE_SIZE, machine_info
from .servers import Child, StandIns, contact_phone, prepare_runtime_folder, runtime_argv

HOSTS_APP = '''"""The WSGI entry the hosts benchmark serves: sfdcflex, or the host's own minimal hello."""
import os

if os.environ.get("BENCH_FLOOR"):
    def application(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "11")])
        return [b'{"ok":true}']
else:
    from sfdcflex.wsgi import create_app
    application = create_app(os.environ["BENCH_ENV"], os.environ["BENCH_FUNCTIONS"])
'''
THREADS = 8
START_SECONDS = 30.0


def install_hosts(folder: Path) -> Path:
    """waitress and gunicorn from PyPI into `folder`/hosts-site (not a venv: pip --target is
    quicker, and both run as `python -m`); returns the folder to put on PYTHONPATH."""
    site = folder / "hosts-site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(site),
                    "waitress", "gunicorn"], check=True, timeout=300, capture_output=True)
    return site


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(port: int, child: Child) -> str:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise RuntimeError(f"{child.describe()} exited with status {child.process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return f"http://127.0.0.1:{port}"
        time.sleep(0.05)
    raise RuntimeError(f"{child.describe()} did not listen on {port} in {START_SECONDS:.0f} s")


def host_argv(host: str, port: int, app: str, threads: int = THREADS) -> list[str]:
    """The command serving WSGI `app` ("module:callable") with `host` on 127.0.0.1:`port`."""
    if host == "waitress":
        return [sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}", f"--threads={threads}", app]
    return [sys.executable, "-m", "gunicorn", "-w", "1", "-k", "gthread", "--threads", str(threads),
            "-b", f"127.0.0.1:{port}", "--log-level", "warning", app]


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of `pid` and its direct children (gunicorn's worker is a child of its master)."""
    total = process_cpu_seconds(pid) or 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    total += process_cpu_seconds(int(entry.name)) or 0.0
    return total


def _measure(client: str, url: str, pid: int, requests: list[Request], connections: int,
             duration: float) -> dict:
    before = tree_cpu_seconds(pid)
    result, client_cpu = drive(client, url, requests, connections=connections, duration=duration)
    answered = result.ok + result.errors
    return {"rps": result.rps, "errors": result.errors, "client_cpu": client_cpu,
            "server_us": (tree_cpu_seconds(pid) - before) * 1e6 / answered if answered else 0.0}


def _start_hosts(names: list[str], folder: Path, env_file: Path, functions: Path, site: Path,
                 stack: contextlib.ExitStack) -> dict[str, tuple[str, int]]:
    (folder / "hosts_app.py").write_text(HOSTS_APP)
    starting: list[tuple[str, Child, int | None]] = []   # all start at once, then each is waited for
    for name in names:
        host, _, floor = name.partition(" ")
        if host == "built-in":
            child = Child(runtime_argv(env_file, functions), folder / "pycache", log=folder / "builtin.log")
            stack.callback(child.kill)
            starting.append((name, child, None))
            continue
        port = _free_port()
        extra = {"PYTHONPATH": f"{folder}:{site}:{Path(__file__).resolve().parents[2]}",
                 "BENCH_ENV": str(env_file), "BENCH_FUNCTIONS": str(functions),
                 # create_app needs PUBLIC_URL; the built-in server links the agent on its own URL.
                 "PUBLIC_URL": f"http://127.0.0.1:{port}",
                 **({"BENCH_FLOOR": "1"} if floor else {})}
        child = Child(host_argv(host, port, "hosts_app:application"), folder / "pycache",
                      log=folder / f"{host}.log",
                      extra_env=extra)
        stack.callback(child.kill)
        starting.append((name, child, port))
    return {name: (child.wait_for_url() if port is None else _wait_for_port(port, child), child.pid)
            for name, child, port in starting}


def run_hosts(args: argparse.Namespace) -> dict:
    client = choose_client(args.client)
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sfdcflex-hosts-")))
        site = args.site or install_hosts(folder)
        standins = StandIns(CACHE_SIZE, folder / "pycache")
        stack.callback(standins.kill)
        env_file, functions = prepare_runtime_folder(folder, standins.settings, CACHE_SIZE)
        names = ["built-in", "waitress", "waitress floor", "gunicorn", "gunicorn floor"]
        hosts = _start_hosts(names, folder, env_file, functions, site, stack)
        token = standins.token()
        link_agent(hosts["built-in"][0], token)
        scenarios = {"hello": [("GET", "/hello", b"", {})],
                     "get-contact hit": [contact_request(token, contact_phone(0))]}
        samples: dict[tuple[str, str], list[dict]] = {}
        for _ in range(args.rounds):
            for scenario, requests in scenarios.items():
                for name, (url, pid) in hosts.items():
                    if name.endswith("floor") and scenario != "hello":
                        continue
                    samples.setdefault((name, scenario), []).append(
                        _measure(client, url, pid, requests, args.connections, args.duration))
    rows = [{"host": name, "scenario": scenario,
             "rps": statistics.median(r["rps"] for r in runs),
             "server_us_per_request": statistics.median(r["server_us"] for r in runs),
             "client_cpu_percent": statistics.median(r["client_cpu"] for r in runs),
             "errors": sum(r["errors"] for r in runs)} for (name, scenario), runs in samples.items()]
    return {"machine": machine_info(), "client": client, "rounds": args.rounds,
            "duration_s": args.duration, "connections": args.connections, "rows": rows}


def format_hosts(report: dict) -> str:
    lines = [f"serving choices: {report['machine']['nproc']} CPUs, Python {report['machine']['python']}, "
             f"load average {report['machine']['load_average'] or 0:.1f}",
             f"client {report['client']}, {report['connections']} connections, medians of "
             f"{report['rounds']} rounds x {report['duration_s']:g} s; 'floor' = the host's own WSGI hello",
             f"{'host':<16}{'scenario':<17}{'req/s':>8}{'srv us/req':>11}{'client %':>9}{'errors':>7}"]
    for row in report["rows"]:
        lines.append(f"{row['host']:<16}{row['scenario']:<17}{row['rps']:>8.0f}"
                     f"{row['server_us_per_request']:>11.0f}{row['client_cpu_percent']:>9.0f}"
                     f"{row['errors']:>7}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sfdcflex.bench.hosts",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per run (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--connections", type=int, default=16, help="connections (default 16)")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--site", type=Path, default=None,
                        help="a folder where waitress and gunicorn are installed already (pip --target)")
    args = parser.parse_args(argv)
    print(format_hosts(run_hosts(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
