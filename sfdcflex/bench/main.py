"""python -m sfdcflex.bench: the runtime and get-contact against a bare http.server, side by side.

Four scenarios, each server in its own process, taking turns round by round so that a
slow moment of the machine falls on all of them: a bare ThreadingHTTPServer answering
{"ok":true}; the runtime serving a hello function; get-contact answered from the cache;
get-contact that always misses the cache and asks the Salesforce stand-in. The Salesforce,
IAM and Sync stand-ins run in a process of their own so they do not compete with the load
generator for the GIL. Only 127.0.0.1 is contacted; every child is killed at the end.
"""
from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .load import Request, run_load
from .servers import (AGENT, Child, StandIns, bare_argv, child_environment, contact_phone,
                            prepare_runtime_folder, runtime_argv, serve_bare, serve_standins)

CACHE_SIZE = 100
# Twice the per-agent cache size, taken in turn: a number comes round again only after
# CACHE_SIZE other numbers have pushed it out of the LRU, so every lookup is a miss.
MISS_CONTACTS = 2 * CACHE_SIZE
CALL_SAMPLES = 20
# The original (Twilio Functions + Sync) on every uncached lookup: validate the Flex token,
# read the Sync document, ask Salesforce who the user is, then run the SOQL query.
ORIGINAL_CALLS = {"iam": 1, "store": 1, "salesforce": 2, "total": 4}


@dataclass(frozen=True)
class Scenario:
    """A named load: which server it hits and how to make its next request."""

    name: str
    url: str
    next_request: Callable[[], Request]


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


# -- talking to the runtime ----------------------------------------------------------------------

def fetch(url: str, method: str = "GET", path: str = "/", body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    """One request on a fresh connection: status, body and the Location header."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request(method, path, body, headers or {})
        response = connection.getresponse()
        return response.status, response.read(), response.getheader("Location") or ""
    finally:
        connection.close()


def contact_request(token: str, phone: str) -> Request:
    body = json.dumps({"Token": token, "phone": phone}).encode()
    return "POST", "/get-contact", body, {"Content-Type": "application/json"}


def link_agent(runtime_url: str, token: str) -> None:
    """Link the bench agent the way a browser does: /auth, the consent page, the redirect back."""
    from ..demo.standins.consent_page import submit_consent
    body = json.dumps({"Token": token, "origin": runtime_url}).encode()
    status, answer, _ = fetch(runtime_url, "POST", "/auth", body, {"Content-Type": "application/json"})
    if status != 200:
        raise RuntimeError(f"/auth answered {status}: {answer[:200]!r}")
    location = submit_consent(json.loads(answer)["authorize_url"], AGENT)
    status, answer, _ = fetch(runtime_url, "GET", location[len(runtime_url):])
    if status != 200:
        raise RuntimeError(f"/oauth-callback answered {status}: {answer[:200]!r}")


def _lookup(runtime_url: str, token: str, phone: str) -> None:
    method, path, body, headers = contact_request(token, phone)
    status, answer, _ = fetch(runtime_url, method, path, body, headers)
    if status != 200:
        raise RuntimeError(f"get-contact {phone} answered {status}: {answer[:200]!r}")


def _counted(standins: StandIns) -> dict[str, int]:
    calls = standins.calls()
    counts = {"iam": calls["iam"].get("validate", 0), "store": sum(calls["sync"].values()),
              "salesforce": sum(calls["salesforce"].values())}
    return dict(counts, total=sum(counts.values()))


def _per_lookup(standins: StandIns, lookups: list[Callable[[], None]]) -> dict[str, float]:
    before = _counted(standins)
    for lookup in lookups:
        lookup()
    after = _counted(standins)
    return {name: (after[name] - before[name]) / len(lookups) for name in before}


def measure_upstream_calls(runtime_url: str, standins: StandIns, token: str) -> dict[str, dict]:
    """Upstream calls per get-contact, from the stand-ins' counters, for each kind of lookup."""
    numbers = [contact_phone(i) for i in range(1, CALL_SAMPLES + 1)]
    fresh = [contact_phone(i) for i in range(CALL_SAMPLES + 1, CALL_SAMPLES + 4)]

    def lookups(phones: list[str], new_token: bool = False) -> list[Callable[[], None]]:
        return [lambda p=p: _lookup(runtime_url, standins.token() if new_token else token, p)
                for p in phones]

    return {
        "first lookup after linking": _per_lookup(standins, lookups([contact_phone(0)])),
        "miss, Flex token seen before": _per_lookup(standins, lookups(numbers)),
        "miss, new Flex token": _per_lookup(standins, lookups(fresh, new_token=True)),
        "hit": _per_lookup(standins, lookups(numbers)),
        "original, every uncached lookup": dict(ORIGINAL_CALLS),
    }


# -- measuring ------------------------------------------------------------------------------------

def cold_start_ms(argv: list[str], folder: Path, name: str) -> float:
    """Milliseconds from spawning a server to its first 200 on /hello."""
    began = time.perf_counter()
    child = Child(argv, folder / "pycache", log=folder / f"cold-{name}.log")
    try:
        url = child.wait_for_url()
        for _ in range(200):
            with contextlib.suppress(OSError):
                if fetch(url, "GET", "/hello")[0] == 200:
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


def build_scenarios(bare_url: str, runtime_url: str, token: str) -> list[Scenario]:
    hello: Request = ("GET", "/hello", b"", {})
    hit = contact_request(token, contact_phone(0))
    misses = itertools.cycle([contact_request(token, contact_phone(i)) for i in range(MISS_CONTACTS)])
    return [Scenario("bare", bare_url, lambda: hello),
            Scenario("runtime hello", runtime_url, lambda: hello),
            Scenario("get-contact hit", runtime_url, lambda: hit),
            # itertools.cycle's next() runs in C under the GIL: the threads share one rotation.
            Scenario("get-contact miss", runtime_url, misses.__next__)]


def run_rounds(scenarios: list[Scenario], connections: list[int], rounds: int,
               duration: float) -> dict[str, dict[str, dict]]:
    """Every scenario at every connection count, `rounds` times over, summarized by medians."""
    for scenario in scenarios:  # warm-up, discarded: threads, caches, the first connections
        run_load(scenario.url, scenario.next_request, connections=max(connections),
                 duration=min(duration, 0.3))
    samples: dict[tuple[str, int], list] = {}
    for _ in range(rounds):
        for count in connections:
            for scenario in scenarios:
                result = run_load(scenario.url, scenario.next_request, connections=count,
                                  duration=duration)
                samples.setdefault((scenario.name, count), []).append(result)
    results: dict[str, dict[str, dict]] = {}
    for (name, count), runs in samples.items():
        results.setdefault(name, {})[str(count)] = {
            "rps": statistics.median(r.rps for r in runs),
            "p50_ms": statistics.median(r.p50_ms for r in runs),
            "p99_ms": statistics.median(r.p99_ms for r in runs),
            "errors": sum(r.errors for r in runs), "requests": sum(r.ok + r.errors for r in runs),
            "rps_rounds": [round(r.rps, 1) for r in runs]}
    for name, by_count in results.items():
        for count, row in by_count.items():
            bare = results["bare"][count]["rps"]
            row["ratio_to_bare"] = row["rps"] / bare if bare else 0.0
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
        cold = measure_cold_starts(argvs, args.cold_starts, folder)
        children = {}
        for name, argv in argvs.items():
            children[name] = Child(argv, folder / "pycache", log=folder / f"{name}.log")
            stack.callback(children[name].kill)
        urls = {name: child.wait_for_url() for name, child in children.items()}
        token = standins.token()
        link_agent(urls["runtime"], token)
        calls = measure_upstream_calls(urls["runtime"], standins, token)
        scenarios = build_scenarios(urls["bare"], urls["runtime"], token)
        results = run_rounds(scenarios, args.connections, args.rounds, args.duration)
        rss = {name: (child.peak_rss_kib() or 0) / 1024 for name, child in children.items()}
    report = {
        "machine": dict(machine_info(), load_average_before=load_before),
        "settings": {"duration_s": args.duration, "rounds": args.rounds,
                     "connections": args.connections, "cold_starts": args.cold_starts,
                     "cache_size": CACHE_SIZE, "miss_contacts": MISS_CONTACTS},
        "miss_method": (f"{MISS_CONTACTS} seeded numbers in turn through a {CACHE_SIZE}-entry LRU "
                        "(CACHE_SIZE): each misses"),
        "scenarios": results, "cold_start": cold, "peak_rss_mib": rss, "upstream_calls": calls}
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
        goals.append(_goal(f"cached get-contact >= 0.5x bare at {count} conn",
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
             f"get-contact miss: {report['miss_method']}", "",
             f"{'scenario':<20}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
             f"{'errors':>8}{'x bare':>8}"]
    for count in settings["connections"]:
        for name, by_count in report["scenarios"].items():
            row = by_count[str(count)]
            lines.append(f"{name:<20}{count:>6}{row['rps']:>10.0f}{row['p50_ms']:>9.2f}"
                         f"{row['p99_ms']:>9.2f}{row['errors']:>8}{row['ratio_to_bare']:>8.2f}")
    cold, rss = report["cold_start"], report["peak_rss_mib"]
    lines += ["", f"cold start, spawn to first 200 on /hello, median of {settings['cold_starts']}: "
              f"runtime {cold['runtime']['median_ms']:.0f} ms, bare {cold['bare']['median_ms']:.0f} ms",
              f"  (python -c pass alone: {cold['python -c pass']['median_ms']:.0f} ms; first start, "
              f"compiling bytecode: runtime {cold['runtime']['first_start_ms']:.0f} ms)",
              f"peak RSS (VmHWM): runtime {rss['runtime']:.1f} MiB, bare {rss['bare']:.1f} MiB", "",
              f"{'upstream calls per get-contact':<34}{'IAM':>6}{'store':>7}{'Salesforce':>12}"
              f"{'total':>7}"]
    for name, row in report["upstream_calls"].items():
        lines.append(f"{name:<34}{row['iam']:>6.2f}{row['store']:>7.2f}{row['salesforce']:>12.2f}"
                     f"{row['total']:>7.2f}")
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
        from .hostile import run_hostile_report  # imports this module: loaded only when asked
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

