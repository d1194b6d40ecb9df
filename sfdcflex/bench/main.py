"""python -m sfdcflex.bench: the runtime and get-contact against a bare http.server, side by side.

Five scenarios, each server in its own process, taking turns round by round so that a
slow moment of the machine falls on all of them: a bare ThreadingHTTPServer answering
{"ok":true} to a GET and to the same POST get-contact sends; the runtime serving a hello
function; get-contact answered from the cache; get-contact that always misses the cache and
asks the Salesforce stand-in. The Salesforce, IAM and Sync stand-ins run in a process of their
own. Each scenario runs in three modes (modes.py): back to back on kept-alive connections (wrk
when installed: drivers.py says why), spaced keep-alive (many connections, a request a second
each, as panels send them), and a new connection per request. Each row reports the server's CPU
and context switches per request from /proc and its system calls per request from strace.
`--against REF` runs that commit's runtime beside this tree's (against.py). `--latency` adds the
latency scenario (latency.py). Only 127.0.0.1 is contacted; every child is killed at the end.
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
from pathlib import Path

from . import against
from .calls import contact_request, link_agent, measure_upstream_calls
from .cold_start import measure_cold_starts
from .drivers import CLIENT_BOUND_PERCENT, choose_client, drive
from .load import Request
from .hostile import run_hostile_report
from .modes import (KEEP_ALIVE, MODES, NEW_CONNECTIONS, SPACED, Scenario, Spacing,
                    count_syscalls, idle_costs, timed_run)
from .report import format_report
from .servers import (CACHE_SIZE, MISS_CONTACTS, Child, StandIns, bare_argv, contact_phone,
                      minimal_server_argv, prepare_runtime_folder, runtime_argv, serve_bare,
                      serve_standins)

# Each scenario's warm-up before the measured rounds (at most --duration): threads, caches, the
# first connections.
WARM_UP_SECONDS = 0.3


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
    parser.add_argument("--spaced-connections", type=int, default=None,
                        help="kept-alive connections of the spaced mode (default 100, --quick 50)")
    parser.add_argument("--spaced-interval", type=float, default=1.0,
                        help="seconds between a spaced connection's requests (default 1)")
    parser.add_argument("--modes", default=",".join(MODES),
                        help=f"comma-separated modes to run (default {','.join(MODES)})")
    parser.add_argument("--against", metavar="REF", default=None,
                        help="also run that commit's runtime (built in a temporary git worktree), "
                             "and fail on a cached hit's CPU per request up more than 10 %%")
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
    args.spaced_connections = args.spaced_connections or (50 if args.quick else 100)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not args.modes or set(args.modes) - set(MODES):
        parser.error(f"--modes takes some of {', '.join(MODES)}, separated by commas")
    try:
        args.connections = [int(n) for n in args.connections.split(",") if n.strip()]
    except ValueError:
        parser.error("--connections takes whole numbers separated by commas, e.g. 1,16")
    if args.duration <= 0 or args.rounds < 1 or args.cold_starts < 1 or not args.connections \
            or min(args.connections) < 1 or args.spaced_connections < 1 or args.spaced_interval <= 0:
        parser.error("--duration, --rounds, --cold-starts, --connections and the spacing "
                     "must be positive")
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
    """The scenarios; with a reference runtime (urls["reference"]), its hello and hit besides."""
    hello: Request = ("GET", "/hello", b"", {})
    hit = contact_request(token, contact_phone(0))
    misses = [contact_request(token, contact_phone(i)) for i in range(MISS_CONTACTS)]
    scenarios = [Scenario("bare", urls["bare"], [hello], pids["bare"]),
                 # The same POST, body and headers as the hit: the honest baseline for get-contact.
                 Scenario("bare POST", urls["bare"], [hit], pids["bare"]),
                 Scenario("runtime hello", urls["runtime"], [hello], pids["runtime"]),
                 Scenario("get-contact hit", urls["runtime"], [hit], pids["runtime"], "bare POST")]
    if "reference" in urls:
        scenarios += [
            Scenario(against.reference_name("runtime hello"), urls["reference"], [hello],
                     pids["reference"]),
            Scenario(against.reference_name("get-contact hit"), urls["reference"], [hit],
                     pids["reference"], "bare POST")]
    return scenarios + [Scenario("get-contact miss", urls["runtime"], misses, pids["runtime"],
                                 "bare POST")]


def mode_scenarios(mode: str, scenarios: list[Scenario]) -> list[Scenario]:
    """The scenarios a mode runs: the miss (its 200 numbers in turn) only back to back."""
    return [s for s in scenarios if mode == KEEP_ALIVE or len(s.requests) == 1]


def mode_counts(mode: str, connections: list[int], spacing: Spacing) -> list[int]:
    return [spacing.connections] if mode == SPACED else connections


def _summary(runs: list[dict]) -> dict:
    outcomes = [run["result"] for run in runs]
    client_cpu = statistics.median(run["client_cpu"] for run in runs)
    return {"rps": statistics.median(r.rps for r in outcomes),
            "p50_ms": statistics.median(r.p50_ms for r in outcomes),
            "p99_ms": statistics.median(r.p99_ms for r in outcomes),
            "errors": sum(r.errors for r in outcomes),
            "requests": sum(r.ok + r.errors for r in outcomes),
            "rps_rounds": [round(r.rps, 1) for r in outcomes],
            "server_us_per_request": statistics.median(run["server_us"] for run in runs),
            "server_us_rounds": [round(run["server_us"], 1) for run in runs],
            "switches_per_request": statistics.median(run["switches"] for run in runs),
            "client_cpu_percent": client_cpu, "client_bound": client_cpu >= CLIENT_BOUND_PERCENT}


def add_ratios(mode: str, results: dict[str, dict[str, dict]], baselines: dict[str, str]) -> None:
    """Each row's ratio to its bare baseline: of throughput where the client sends back to back,
    of CPU per request (bare's over this one's) where the client sets the rate (spaced)."""
    for name, by_count in results.items():
        for count, row in by_count.items():
            base = results[baselines[name]][count]
            row["baseline"] = baselines[name]
            if mode == SPACED:
                mine = row["server_us_per_request"]
                row["ratio_to_bare"] = base["server_us_per_request"] / mine if mine else 0.0
            else:
                row["ratio_to_bare"] = row["rps"] / base["rps"] if base["rps"] else 0.0


def run_rounds(scenarios: list[Scenario], connections: list[int], rounds: int,
               duration: float, client: str = "python", modes: tuple[str, ...] = (KEEP_ALIVE,),
               spacing: Spacing = Spacing()) -> dict[str, dict[str, dict[str, dict]]]:
    """Every mode, scenario and connection count, `rounds` times over, the scenarios taking
    turns within each round; summarized by medians. {mode: {scenario: {connections: row}}}"""
    for scenario in scenarios:  # warm-up, discarded
        drive("python", scenario.url, scenario.requests, connections=max(connections),
              duration=min(duration, WARM_UP_SECONDS))
    samples: dict[tuple[str, str, int], list[dict]] = {}
    for _ in range(rounds):
        for mode in modes:
            for count in mode_counts(mode, connections, spacing):
                for scenario in mode_scenarios(mode, scenarios):
                    samples.setdefault((mode, scenario.name, count), []).append(
                        timed_run(mode, scenario, count, duration, client, spacing))
    results: dict[str, dict[str, dict[str, dict]]] = {}
    for (mode, name, count), runs in samples.items():
        results.setdefault(mode, {}).setdefault(name, {})[str(count)] = _summary(runs)
    baselines = {scenario.name: scenario.baseline for scenario in scenarios}
    for mode, by_name in results.items():
        add_ratios(mode, by_name, baselines)
    return results


def add_syscalls(results: dict[str, dict[str, dict[str, dict]]], scenarios: list[Scenario],
                 connections: list[int], spacing: Spacing) -> None:
    """Add each row's system calls per request (None without strace), from untimed windows."""
    for mode, by_name in results.items():
        for scenario in mode_scenarios(mode, scenarios):
            for count in mode_counts(mode, connections, spacing):
                row = by_name[scenario.name][str(count)]
                counted = (count_syscalls(mode, scenario, count, spacing)
                           if len(scenario.requests) == 1 else None)
                answered, calls = counted or (0, {})
                row["syscalls"] = calls
                row["syscalls_per_request"] = calls["total"] / answered if counted else None
                # futex calls are threads waiting on each other (the GIL, a queue): their number
                # follows how the threads interleave, which strace itself changes.
                row["syscalls_without_futex_per_request"] = (
                    (calls["total"] - calls.get("futex", 0)) / answered if counted else None)


def _start_servers(stack: contextlib.ExitStack, folder: Path, standins: StandIns,
                   reference: against.Reference | None) -> dict[str, Child]:
    env_file, functions = prepare_runtime_folder(folder, standins.settings, CACHE_SIZE)
    children = {"runtime": Child(runtime_argv(env_file, functions), folder / "pycache",
                                 log=folder / "runtime.log")}
    stack.callback(children["runtime"].kill)
    children["bare"] = Child(bare_argv(), folder / "pycache", log=folder / "bare.log")
    stack.callback(children["bare"].kill)
    if reference is not None:
        # Its own folder (store, .env, functions of its tree), its code from its worktree.
        env_file, functions = prepare_runtime_folder(folder / "reference", standins.settings,
                                                     CACHE_SIZE, root=reference.root)
        children["reference"] = Child(runtime_argv(env_file, functions), folder / "pycache",
                                      log=folder / "reference.log", root=reference.root)
        stack.callback(children["reference"].kill)
    return children


def run_benchmark(args: argparse.Namespace) -> dict:
    """Start the servers, measure, and return the report as plain data; children always die,
    and the --against worktree is always removed."""
    load_before = load_average()
    spacing = Spacing(args.spaced_connections, args.spaced_interval)
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sfdcflex-bench-")))
        reference = stack.enter_context(against.checked_out(args.against)) if args.against else None
        standins = StandIns(MISS_CONTACTS, folder / "pycache")
        stack.callback(standins.kill)
        env_file, functions = prepare_runtime_folder(folder / "cold", standins.settings, CACHE_SIZE)
        # The cold-start baseline is a minimal server script, not this benchmark module.
        cold = measure_cold_starts({"runtime": runtime_argv(env_file, functions),
                                    "bare": minimal_server_argv(folder)}, args.cold_starts, folder)
        children = _start_servers(stack, folder, standins, reference)
        urls = {name: child.wait_for_url() for name, child in children.items()}
        token = standins.token()
        for name in ("reference", "runtime"):
            if name in urls:
                link_agent(urls[name], token)
        calls = measure_upstream_calls(urls["runtime"], standins, token)
        scenarios = build_scenarios(urls, {name: child.pid for name, child in children.items()}, token)
        client = choose_client(args.client)
        results = run_rounds(scenarios, args.connections, args.rounds, args.duration, client,
                             tuple(args.modes), spacing)
        add_syscalls(results, scenarios, args.connections, spacing)
        idle = {name: idle_costs(child.pid) for name, child in children.items()}
        rss = {name: (child.peak_rss_kib() or 0) / 1024 for name, child in children.items()}
        server_trees = {name: _tree_of(child.pid) for name, child in children.items()}
    report = {
        "machine": dict(machine_info(), load_average_before=load_before),
        "settings": {"duration_s": args.duration, "rounds": args.rounds,
                     "connections": args.connections, "cold_starts": args.cold_starts,
                     "cache_size": CACHE_SIZE, "miss_contacts": MISS_CONTACTS, "client": client,
                     "modes": args.modes, "spaced_connections": spacing.connections,
                     "spaced_interval_s": spacing.interval},
        "miss_method": (f"{MISS_CONTACTS} seeded numbers in turn through a {CACHE_SIZE}-entry LRU "
                        "(CACHE_SIZE): each misses"),
        "scenarios": results.get(KEEP_ALIVE, {}), "spaced": results.get(SPACED, {}),
        "new_connections": results.get(NEW_CONNECTIONS, {}),
        "idle": idle, "cold_start": cold, "peak_rss_mib": rss, "upstream_calls": calls,
        "server_trees": server_trees}
    if reference is not None:
        changes = against.cpu_changes(results)
        report["against"] = {"ref": reference.ref, "commit": reference.commit, "changes": changes,
                             "regressions": against.regressions(changes)}
    if args.latency:
        from .latency import run_latency
        report["latency"] = run_latency(args.latency_misses)
    report["goals"] = evaluate_goals(report)
    return report


def _tree_of(pid: int) -> dict[str, str]:
    """The working directory, PYTHONPATH and command line a server runs with, from /proc: which
    tree's code it runs (`python -m` imports from its working directory first)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        return {"cwd": os.readlink(f"/proc/{pid}/cwd"),
                "pythonpath": next((v[11:].decode() for v in environ if v.startswith(b"PYTHONPATH=")), ""),
                "cmdline": Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()}
    except OSError:
        return {}


# -- the report ------------------------------------------------------------------------------------

def _goal(text: str, value: float, target: float, at_least: bool, unit: str) -> dict:
    passed = value >= target if at_least else value <= target
    return {"goal": text, "value": round(value, 3), "target": target, "unit": unit, "pass": passed}


def spaced_extra(report: dict, name: str) -> float | None:
    """What a spaced request of `name` costs the server above a back-to-back one (1 connection),
    beyond what the same costs the bare server (its baseline): waking an idle thread and a cold
    cache cost every server something, and that part is the machine's, not the runtime's."""
    spaced, back_to_back = report["spaced"], report["scenarios"]
    try:
        row = next(iter(spaced[name].values()))
        base = next(iter(spaced[row["baseline"]].values()))
        return ((row["server_us_per_request"] - back_to_back[name]["1"]["server_us_per_request"])
                - (base["server_us_per_request"]
                   - back_to_back[row["baseline"]]["1"]["server_us_per_request"]))
    except (KeyError, StopIteration):
        return None


def evaluate_goals(report: dict) -> list[dict]:
    """Issue 24's goals (and the earlier ones), each with the measured value and PASS or MISS."""
    goals = []
    targets = {1: (0.95, 0.75, 70), 16: (0.85, 0.65, 110)}
    for count in report["settings"]["connections"]:
        hello, hit = (report["scenarios"].get(name, {}).get(str(count))
                      for name in ("runtime hello", "get-contact hit"))
        if hello is None or hit is None or count not in targets:
            continue
        at_least_hello, at_least_hit, cpu = targets[count]
        goals += [_goal(f"runtime hello >= {at_least_hello}x bare at {count} conn",
                        hello["ratio_to_bare"], at_least_hello, True, "x"),
                  _goal(f"cached get-contact >= {at_least_hit}x bare POST at {count} conn",
                        hit["ratio_to_bare"], at_least_hit, True, "x"),
                  _goal(f"server CPU per cached hit <= {cpu} us at {count} conn",
                        hit["server_us_per_request"], cpu, False, "us")]
        if count == 1 and hit.get("syscalls_per_request") is not None:
            # to a tenth: the server's idle timers add a few calls to the window's 200 requests
            goals.append(_goal("system calls per cached hit <= 3 at 1 conn",
                               round(hit["syscalls_per_request"], 1), 3, False, ""))
    extra = spaced_extra(report, "get-contact hit")
    if extra is not None:
        goals.append(_goal("spaced hit <= 15 us above back to back (net)", extra, 15, False, "us"))
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
    found = report.get("against", {}).get("regressions", [])
    for line in against.regression_lines(found, args.against or ""):
        print(line, file=sys.stderr)
    return 1 if found else 0

