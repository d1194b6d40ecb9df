"""python -m sfdcflex.bench: the runtime and get-contact against a bare http.server, side by side.

Five scenarios, each server in its own process, taking turns round by round so that a
slow moment of the machine falls on all of them: a bare ThreadingHTTPServer answering
{"ok":true} to a GET and to the same POST get-contact sends; the runtime serving a hello
function; get-contact answered from the cache; get-contact that always misses the cache and
asks the Salesforce stand-in. The Salesforce, IAM and Sync stand-ins run in a process of their
own. The load comes from `wrk` when installed (drivers.py says why), and each row reports the
client's CPU and the server's CPU per request from /proc. `--latency` adds the latency scenario
(latency.py). Only 127.0.0.1 is contacted; every child is killed at the end.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .calls import contact_request, link_agent, measure_upstream_calls
from .cold_start import measure_cold_starts
from .drivers import CLIENT_BOUND_PERCENT, choose_client, drive, process_cpu_seconds
from .load import Request
from .hostile import run_hostile_report
from .servers import (CACHE_SIZE, MISS_CONTACTS, Child, StandIns, bare_argv, contact_phone,
                      minimal_server_argv, prepare_runtime_folder, runtime_argv, serve_bare,
                      serve_standins)

# Each scenario's warm-up before the measured rounds (at most --duration): threads, caches, the
# first connections.
WARM_UP_SECONDS = 0.3


@dataclass(frozen=True)
class Scenario:
    """A named load: which server it hits (and its pid), the requests it rotates through, and
    which scenario its ratio is taken against."""

    name: str
    url: str
    requests: list[Request]
    pid: int
    baseline: str = "bare"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sfdcflex.bench", description=(
        "Benchmark the runtime and get-contact against a bare http.server, side by side."))
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds per scenario per round (default 2, --quick 0.5)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3, --quick 1)")
    parser.add_argument("--connections", default="1,16",
                        help="comma-separated connection counts (default 1,16)")
    parser.add_argument("--cold-starts", type=int, default=None,
                        help="starts timed per server (default 5, --quick 3)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--quick", action="store_true", help="a short run (about 10 seconds)")
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto",
                        help="load client: wrk when installed (auto, the default), or the Python one")
    parser.add_argument("--latency", action="store_true",
                        help="also run the latency scenario (misses through a 20/80 ms proxy)")
    parser.add_argument("--latency-misses", type=int, default=30, help=argparse.SUPPRESS)
    parser.add_argument("--hostile", action="store_true",
                        help="run the hostile-load scenarios instead (see bench/hostile.py)")
    parser.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-standins", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--contacts", type=int, default=MISS_CONTACTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.duration = args.duration or (0.5 if args.quick else 2.0)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.cold_starts = args.cold_starts or (3 if args.quick else 5)
    try:
        args.connections = [int(n) for n in args.connections.split(",") if n.strip()]
    except ValueError:
        parser.error("--connections takes whole numbers separated by commas, e.g. 1,16")
    if args.duration <= 0 or args.rounds < 1 or args.cold_starts < 1 or not args.connections \
            or min(args.connections) < 1:
        parser.error("--duration, --rounds, --cold-starts and --connections must be positive")
    return args


def machine_info() -> dict[str, object]:
    """nproc, the CPU model from /proc/cpuinfo, and the Python that ran the benchmark."""
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "system": f"{platform.system()} {platform.machine()}", "load_average": load_average()}


def load_average() -> float | None:
    """The one-minute load average: other work on the machine skews every figure."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


# -- measuring ------------------------------------------------------------------------------------

def build_scenarios(urls: dict[str, str], pids: dict[str, int], token: str) -> list[Scenario]:
    hello: Request = ("GET", "/hello", b"", {})
    hit = contact_request(token, contact_phone(0))
    misses = [contact_request(token, contact_phone(i)) for i in range(MISS_CONTACTS)]
    return [Scenario("bare", urls["bare"], [hello], pids["bare"]),
            # The same POST, body and headers as the hit: the honest baseline for get-contact.
            Scenario("bare POST", urls["bare"], [hit], pids["bare"]),
            Scenario("runtime hello", urls["runtime"], [hello], pids["runtime"]),
            Scenario("get-contact hit", urls["runtime"], [hit], pids["runtime"], "bare POST"),
            Scenario("get-contact miss", urls["runtime"], misses, pids["runtime"], "bare POST")]


def _one_run(client: str, scenario: Scenario, count: int, duration: float) -> dict:
    cpu_before = process_cpu_seconds(scenario.pid)
    result, client_cpu = drive(client, scenario.url, scenario.requests, connections=count,
                               duration=duration)
    cpu_after = process_cpu_seconds(scenario.pid)
    answered = result.ok + result.errors
    server_us = ((cpu_after - cpu_before) * 1e6 / answered
                 if answered and cpu_before is not None and cpu_after is not None else 0.0)
    return {"result": result, "client_cpu": client_cpu, "server_us": server_us}


def run_rounds(scenarios: list[Scenario], connections: list[int], rounds: int,
               duration: float, client: str = "python") -> dict[str, dict[str, dict]]:
    """Every scenario at every connection count, `rounds` times over, summarized by medians."""
    for scenario in scenarios:  # warm-up, discarded
        drive("python", scenario.url, scenario.requests, connections=max(connections),
              duration=min(duration, WARM_UP_SECONDS))
    samples: dict[tuple[str, int], list[dict]] = {}
    for _ in range(rounds):
        for count in connections:
            for scenario in scenarios:
                samples.setdefault((scenario.name, count), []).append(
                    _one_run(client, scenario, count, duration))
    results: dict[str, dict[str, dict]] = {}
    for (name, count), runs in samples.items():
        outcomes = [run["result"] for run in runs]
        client_cpu = statistics.median(run["client_cpu"] for run in runs)
        results.setdefault(name, {})[str(count)] = {
            "rps": statistics.median(r.rps for r in outcomes),
            "p50_ms": statistics.median(r.p50_ms for r in outcomes),
            "p99_ms": statistics.median(r.p99_ms for r in outcomes),
            "errors": sum(r.errors for r in outcomes), "requests": sum(r.ok + r.errors for r in outcomes),
            "rps_rounds": [round(r.rps, 1) for r in outcomes],
            "server_us_per_request": statistics.median(run["server_us"] for run in runs),
            "client_cpu_percent": client_cpu, "client_bound": client_cpu >= CLIENT_BOUND_PERCENT}
    baselines = {scenario.name: scenario.baseline for scenario in scenarios}
    for name, by_count in results.items():
        for count, row in by_count.items():
            base = results[baselines[name]][count]["rps"]
            row["baseline"] = baselines[name]
            row["ratio_to_bare"] = row["rps"] / base if base else 0.0
    return results


def run_benchmark(args: argparse.Namespace) -> dict:
    """Start the servers, measure, and return the report as plain data; children always die."""
    load_before = load_average()
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sfdcflex-bench-")))
        standins = StandIns(MISS_CONTACTS, folder / "pycache")
        stack.callback(standins.kill)
        env_file, functions = prepare_runtime_folder(folder, standins.settings, CACHE_SIZE)
        argvs = {"runtime": runtime_argv(env_file, functions), "bare": bare_argv()}
        # The cold-start baseline is a minimal server script, not this benchmark module.
        cold = measure_cold_starts({"runtime": argvs["runtime"], "bare": minimal_server_argv(folder)},
                                   args.cold_starts, folder)
        children = {}
        for name, argv in argvs.items():
            children[name] = Child(argv, folder / "pycache", log=folder / f"{name}.log")
            stack.callback(children[name].kill)
        urls = {name: child.wait_for_url() for name, child in children.items()}
        token = standins.token()
        link_agent(urls["runtime"], token)
        calls = measure_upstream_calls(urls["runtime"], standins, token)
        scenarios = build_scenarios(urls, {name: child.pid for name, child in children.items()}, token)
        client = choose_client(args.client)
        results = run_rounds(scenarios, args.connections, args.rounds, args.duration, client)
        rss = {name: (child.peak_rss_kib() or 0) / 1024 for name, child in children.items()}
    report = {
        "machine": dict(machine_info(), load_average_before=load_before),
        "settings": {"duration_s": args.duration, "rounds": args.rounds,
                     "connections": args.connections, "cold_starts": args.cold_starts,
                     "cache_size": CACHE_SIZE, "miss_contacts": MISS_CONTACTS, "client": client},
        "miss_method": (f"{MISS_CONTACTS} seeded numbers in turn through a {CACHE_SIZE}-entry LRU "
                        "(CACHE_SIZE): each misses"),
        "scenarios": results, "cold_start": cold, "peak_rss_mib": rss, "upstream_calls": calls}
    if args.latency:
        from .latency import run_latency
        report["latency"] = run_latency(args.latency_misses)
    report["goals"] = evaluate_goals(report)
    return report


# -- the report ------------------------------------------------------------------------------------

def _goal(text: str, value: float, target: float, at_least: bool, unit: str) -> dict:
    passed = value >= target if at_least else value <= target
    return {"goal": text, "value": round(value, 3), "target": target, "unit": unit, "pass": passed}


def evaluate_goals(report: dict) -> list[dict]:
    """The issues' goals, each with the measured value and PASS or MISS."""
    goals = []
    for count in report["settings"]["connections"]:
        key = str(count)
        goals.append(_goal(f"runtime hello >= 0.8x bare at {count} conn",
                           report["scenarios"]["runtime hello"][key]["ratio_to_bare"], 0.8, True, "x"))
        goals.append(_goal(f"cached get-contact >= 0.5x bare POST at {count} conn",
                           report["scenarios"]["get-contact hit"][key]["ratio_to_bare"], 0.5, True, "x"))
    calls = report["upstream_calls"]
    goals += [
        _goal("cold start to first 200 <= 150 ms", report["cold_start"]["runtime"]["median_ms"],
              150, False, "ms"),
        _goal("peak RSS of the runtime <= 40 MiB", report["peak_rss_mib"]["runtime"], 40, False, "MiB"),
        _goal("Salesforce calls on a miss <= 1",
              calls["miss, Flex token seen before"]["salesforce"], 1, False, ""),
        _goal("upstream calls on a hit = 0", calls["hit"]["total"], 0, False, ""),
        _goal("store calls after the first request = 0",
              calls["miss, Flex token seen before"]["store"], 0, False, ""),
        _goal("IAM calls per lookup, token seen before = 0",
              calls["miss, Flex token seen before"]["iam"], 0, False, ""),
    ]
    if "latency" in report:
        from .latency import latency_goals
        goals += [_goal(g["goal"], g["value"], g["limit"], False, g["unit"])
                  for g in latency_goals(report["latency"])]
    return goals


def format_report(report: dict) -> str:
    """The report as a plain-text table under 100 columns."""
    machine, settings = report["machine"], report["settings"]
    lines = [f"sfdcflex benchmark: {machine['nproc']} CPUs, {machine['cpu']}, "
             f"Python {machine['python']}, {machine['system']}",
             f"load average (1 min): {machine['load_average_before']:.2f} before the run, "
             f"{machine['load_average']:.2f} after",
             f"{settings['rounds']} rounds x {settings['duration_s']:g} s per scenario and connection "
             "count, servers taking turns; medians over rounds",
             "each server in its own process; the Salesforce/IAM/Sync stand-ins in another one",
             f"get-contact miss: {report['miss_method']}",
             f"load client: {settings['client']}; 'client %': its CPU use of the cores it ran on;",
             "'srv us': the server process's CPU per request, from /proc", "",
             f"{'scenario':<18}{'conns':>6}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}"
             f"{'errors':>7}{'x base':>7}{'srv us':>8}{'client %':>9}"]
    bound = False
    for count in settings["connections"]:
        for name, by_count in report["scenarios"].items():
            row = by_count[str(count)]
            bound = bound or row["client_bound"]
            lines.append(f"{name:<18}{count:>6}{row['rps']:>8.0f}{row['p50_ms']:>8.2f}"
                         f"{row['p99_ms']:>8.2f}{row['errors']:>7}{row['ratio_to_bare']:>7.2f}"
                         f"{row['server_us_per_request']:>8.0f}{row['client_cpu_percent']:>8.0f}"
                         f"{'!' if row['client_bound'] else ' '}")
    lines.append("x base: req/s over the bare server's for the same request")
    lines.append("  (the GET for hello, get-contact's POST for hit and miss)")
    if bound:
        lines.append("! the load client was near 100 % CPU: that row measures the client, not the server")
    cold, rss = report["cold_start"], report["peak_rss_mib"]
    lines += ["", f"cold start, spawn to first 200 on /hello, median of {settings['cold_starts']}: "
              f"runtime {cold['runtime']['median_ms']:.0f} ms, bare {cold['bare']['median_ms']:.0f} ms",
              f"  (python -c pass alone: {cold['python -c pass']['median_ms']:.0f} ms; first start, "
              f"compiling bytecode: runtime {cold['runtime']['first_start_ms']:.0f} ms)",
              f"peak RSS (VmHWM): runtime {rss['runtime']:.1f} MiB, bare {rss['bare']:.1f} MiB", "",
              f"{'upstream calls per request':<34}{'IAM':>6}{'store':>7}{'Salesforce':>12}"
              f"{'total':>7}"]
    for name, row in report["upstream_calls"].items():
        lines.append(f"{name:<34}{row['iam']:>6.2f}{row['store']:>7.2f}{row['salesforce']:>12.2f}"
                     f"{row['total']:>7.2f}")
    if "latency" in report:
        from .latency import format_latency
        lines += ["", format_latency(report["latency"])]
    lines += ["", "goals"]
    for goal in report["goals"]:
        verdict = "PASS" if goal["pass"] else "MISS"
        lines.append(f"  {verdict}  {goal['goal']:<48} measured {goal['value']:.2f}{goal['unit']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_bare:
        return serve_bare(args.port)
    if args.serve_standins:
        return serve_standins(args.contacts)
    if args.hostile:
        return run_hostile_report(args)
    try:
        report = run_benchmark(args)
    except KeyboardInterrupt:
        print("\nbench: interrupted; every server it started has been stopped", file=sys.stderr)
        return 130
    print(format_report(report))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0

