"""Cold start: milliseconds from spawning a server to its first 200 on /hello, beside a
minimal server script and `python -c pass`, the floors under any server's start."""
from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .servers import Child, child_environment


def fetch_status(url: str, path: str) -> int:
    import http.client
    import urllib.parse
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def cold_start_ms(argv: list[str], folder: Path, name: str) -> float:
    """Milliseconds from spawning a server to its first 200 on /hello."""
    began = time.perf_counter()
    child = Child(argv, folder / "pycache", log=folder / f"cold-{name}.log")
    try:
        url = child.wait_for_url()
        for _ in range(200):
            with contextlib.suppress(OSError):
                if fetch_status(url, "/hello") == 200:
                    return (time.perf_counter() - began) * 1000.0
            time.sleep(0.005)
        raise RuntimeError(f"{child.describe()} never answered 200 on /hello")
    finally:
        child.kill()


def interpreter_start_ms(folder: Path) -> float:
    """Milliseconds for `python -c pass`: the floor under any server's cold start on this machine."""
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=child_environment(folder / "pycache"),
                   check=True, timeout=30)
    return (time.perf_counter() - began) * 1000.0


def measure_cold_starts(servers: dict[str, list[str]], count: int, folder: Path) -> dict[str, dict]:
    """Median spawn-to-first-200 per server, after one untimed start that compiles the bytecode."""
    first = {name: cold_start_ms(argv, folder, name) for name, argv in servers.items()}
    samples: dict[str, list[float]] = {name: [] for name in [*servers, "python -c pass"]}
    for _ in range(count):
        for name, argv in servers.items():  # alternate, so both see the same machine
            samples[name].append(cold_start_ms(argv, folder, name))
        samples["python -c pass"].append(interpreter_start_ms(folder))
    return {name: {"median_ms": statistics.median(values), "samples_ms": values,
                   "first_start_ms": first.get(name)} for name, values in samples.items()}
