"""Who sends the load: `wrk` when it is installed, else the Python load generator in load.py.

The Python generator saturates near 3,000 req/s on one core (it holds the GIL), which is below
what the servers answer; `wrk` (C, epoll) does not. Whichever ran is reported, with its CPU use:
a client near 100 % of its cores is the bottleneck, and then the figures measure the client.
Server CPU per request comes from /proc/<pid>/stat, so it does not depend on the client at all.
"""
from __future__ import annotations

import itertools
import json
import os
import resource
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from .load import LoadResult, Request, run_load

# A client using this share of its cores or more is taken to be the bottleneck.
CLIENT_BOUND_PERCENT = 90.0
_TICKS = os.sysconf("SC_CLK_TCK")

# Each wrk thread rotates through the requests from its own starting point, half the list
# apart, so two threads do not ask for the same number back to back (a miss stays a miss).
_WRK_SCRIPT = """
local requests = {%(requests)s}
local counter = 0
function setup(thread)
  thread:set("offset", counter * %(stride)d)
  counter = counter + 1
end
function init(args)
  position = offset or 0
end
function request()
  position = position %% #requests + 1
  return requests[position]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%%d,"non2xx":%%d,"socket_errors":%%d,"us":%%d,"p50":%%d,"p99":%%d}\\n',
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(99)))
end
"""


def choose_client(requested: str) -> str:
    """"wrk" when asked for (or "auto") and installed; otherwise "python"."""
    if requested == "python":
        return "python"
    if shutil.which("wrk"):
        return "wrk"
    if requested == "wrk":
        raise SystemExit("bench: --client wrk asked for, but wrk is not installed (apt-get install wrk)")
    return "python"


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process `pid` so far, from /proc; None where there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime: fields 14 and 15 of stat


def drive(client: str, url: str, requests: list[Request], *, connections: int,
          duration: float) -> tuple[LoadResult, float]:
    """Run one load; return its result and the client's CPU use in % of the cores it used."""
    if client == "wrk":
        return _drive_wrk(url, requests, connections, duration)
    rotation = itertools.cycle(requests)
    cpu_before, began = time.process_time(), time.perf_counter()
    result = run_load(url, rotation.__next__, connections=connections, duration=duration)
    wall = time.perf_counter() - began
    # The Python client holds the GIL: one core is all it can use, whatever the thread count.
    return result, 100.0 * (time.process_time() - cpu_before) / wall if wall > 0 else 0.0


def _lua_string(text: str) -> str:
    return json.dumps(text)  # a JSON string of ASCII text is a valid Lua string literal


def _wrk_request(request: Request, host: str) -> str:
    """The Lua expression of one request. wrk.format sends only the headers it is given (no
    `Host` of its own when given a table), so the request's `Host` is put in: HTTP/1.1 requires
    it, and the runtime refuses a request without one (RFC 9112 §3.2)."""
    method, path, body, headers = request
    if not any(name.lower() == "host" for name in headers):
        headers = {"Host": host, **headers}
    header_table = "{" + ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()) + "}"
    return (f"wrk.format({_lua_string(method)}, {_lua_string(path)}, {header_table}, "
            f"{_lua_string(body.decode('ascii')) if body else 'nil'})")


def _run_measured(argv: list[str], timeout: float) -> tuple[int, str, str, resource.struct_rusage]:
    """Run `argv` to its end: exit code, stdout, stderr and the CPU it used, its own (wait4),
    not every child this process reaped meanwhile (RUSAGE_CHILDREN would count those too)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, text=True)
        killer = threading.Timer(timeout, process.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            killer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return process.returncode, out.read(), err.read(), usage


def _drive_wrk(url: str, requests: list[Request], connections: int,
               duration: float) -> tuple[LoadResult, float]:
    threads = min(2, connections)
    host = urlsplit(url).netloc
    script = _WRK_SCRIPT % {"requests": ", ".join(_wrk_request(r, host) for r in requests),
                            "stride": max(1, len(requests) // threads)}
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="sfdcflex-wrk-") as lua:
        lua.write(script)
        lua.flush()
        seconds = max(1, round(duration))  # wrk takes whole seconds
        returncode, stdout, stderr, usage = _run_measured(
            ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
             "--timeout", "10s", "-s", lua.name, url], timeout=seconds + 30)
    lines = [line for line in stdout.splitlines() if line.startswith('{"requests"')]
    if returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({returncode}): {stderr.strip()[:200]}")
    summary = json.loads(lines[-1])
    errors = summary["non2xx"] + summary["socket_errors"]
    cpu = usage.ru_utime + usage.ru_stime
    wall = summary["us"] / 1e6
    result = LoadResult(ok=summary["requests"] - summary["non2xx"], errors=errors, seconds=wall,
                        p50_ms=summary["p50"] / 1000.0, p99_ms=summary["p99"] / 1000.0)
    return result, 100.0 * cpu / (wall * threads) if wall > 0 else 0.0
