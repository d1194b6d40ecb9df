"""The three ways load arrives, each measured the same way: one timed run, and one window of its
own for the system calls.

- keep-alive: requests back to back on kept-alive connections (wrk, 1 and 16 connections), the
  most a server can answer;
- spaced: many kept-alive connections, each sending a request every `interval` seconds, as
  agents' panels do (paced.py: the client sets the rate, so the figure that matters is the
  server's CPU per request, and latency);
- new connections: a connection per request (wrk with `Connection: close`).

Server CPU and context switches per request come from /proc over the timed window; system calls
per request from `strace -f -c` over a separate, untimed window of SYSCALL_REQUESTS requests
(strace slows every call down), when strace is installed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from .drivers import drive
from .load import LoadResult, Request
from .paced import Pace, run_paced
from .probes import SyscallCounter, cpu_sample, cpu_spent, strace_available

KEEP_ALIVE, SPACED, NEW_CONNECTIONS = "keep-alive", "spaced", "new-connections"
MODES = (KEEP_ALIVE, SPACED, NEW_CONNECTIONS)
# Enough requests that the server's own timers (a poll every 0.2 s in the bare server) add
# little to the count, few enough that a window under strace stays well under a second.
SYSCALL_REQUESTS = 200
# The spaced window under strace: connections (each sends one request in it).
SYSCALL_SPACED_CONNECTIONS = 50
# How long each server is watched doing nothing, for its idle costs.
IDLE_SECONDS = 1.0


@dataclass(frozen=True)
class Scenario:
    """A named load: which server it hits (and its pid), the requests it rotates through, and
    which scenario its ratio is taken against."""

    name: str
    url: str
    requests: list[Request]
    pid: int
    baseline: str = "bare"


@dataclass(frozen=True)
class Spacing:
    """Spaced keep-alive: how many connections, and the seconds between a connection's requests."""

    connections: int = 100
    interval: float = 1.0


def closing(requests: list[Request]) -> list[Request]:
    """The same requests asking the server to close the connection after answering."""
    return [(method, path, body, {**headers, "Connection": "close"})
            for method, path, body, headers in requests]


def timed_run(mode: str, scenario: Scenario, count: int, duration: float, client: str,
              spacing: Spacing) -> dict:
    """One timed run: the load's result, the client's CPU %, and the server's CPU (µs) and
    context switches per request over the run."""
    if mode == SPACED:
        samples: list = []
        pace = Pace(count, spacing.interval, max(1, round(duration / spacing.interval)))
        cpu_before, began = time.process_time(), time.perf_counter()
        result = run_paced(scenario.url, scenario.requests[0], pace,
                           lambda starting: samples.append(cpu_sample(scenario.pid)))
        wall = time.perf_counter() - began
        client_cpu = 100.0 * (time.process_time() - cpu_before) / wall if wall > 0 else 0.0
        before, after = (samples + [None, None])[:2]
    else:
        requests = closing(scenario.requests) if mode == NEW_CONNECTIONS else scenario.requests
        before = cpu_sample(scenario.pid)
        result, client_cpu = drive(client, scenario.url, requests, connections=count,
                                   duration=duration)
        after = cpu_sample(scenario.pid)
    spent = cpu_spent(before, after)
    answered = result.ok + result.errors
    return {"result": result, "client_cpu": client_cpu,
            "server_us": spent.cpu_ns / 1000 / answered if spent and answered else 0.0,
            "switches": spent.switches / answered if spent and answered else 0.0}


def count_syscalls(mode: str, scenario: Scenario, count: int,
                   spacing: Spacing) -> tuple[int, dict[str, int]] | None:
    """The requests answered in a window under `strace -f -c` and the server's system calls by
    name in it (with their "total"); None when strace is not installed or cannot attach."""
    if not strace_available():
        return None
    if mode == SPACED:
        pace = Pace(min(count, SYSCALL_SPACED_CONNECTIONS), spacing.interval, 1)
    else:
        pace = Pace(count, 0.0, max(1, SYSCALL_REQUESTS // count), mode == NEW_CONNECTIONS)
    counter = SyscallCounter(scenario.pid)
    calls: dict[str, int] = {}

    def window(starting: bool) -> None:
        if starting:
            counter.start()
        else:
            calls.update(counter.stop())

    try:
        result: LoadResult = run_paced(scenario.url, scenario.requests[0], pace, window)
    except RuntimeError:
        counter.stop()
        return None
    answered = result.ok + result.errors
    if not answered or "total" not in calls:
        return None
    return answered, calls


def idle_costs(pid: int, seconds: float = IDLE_SECONDS) -> dict[str, float | None]:
    """What a server spends per second with no request at all (its timers, its loop's wake-ups):
    part of every spaced row's figures, which come at 100 requests a second."""
    before = cpu_sample(pid)
    time.sleep(seconds)
    spent = cpu_spent(before, cpu_sample(pid))
    calls: dict[str, int] = {}
    if strace_available():
        counter = SyscallCounter(pid)
        try:
            counter.start()
            time.sleep(seconds)
        except RuntimeError:
            pass
        finally:
            calls = counter.stop()
    return {"cpu_us_per_s": spent.cpu_ns / 1000 / seconds if spent else None,
            "syscalls_per_s": calls["total"] / seconds if "total" in calls else None}
