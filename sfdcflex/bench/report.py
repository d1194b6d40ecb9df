"""The benchmark's report as plain text under 100 columns: a table per mode, the --against
comparison, cold start, memory, upstream calls and the goals."""
from __future__ import annotations

from .against import regression_lines

MODE_TITLES = (
    ("scenarios", "keep-alive, back to back\n  x base: req/s over the bare server's"),
    ("spaced", "spaced keep-alive, {spaced_connections} connections each sending every "
               "{spaced_interval_s:g} s\n  x base: the bare server's CPU per request over this one's"),
    ("new_connections", "a new connection per request (Connection: close)\n"
                        "  x base: req/s over the bare server's"),
)


def _header(report: dict) -> list[str]:
    machine, settings = report["machine"], report["settings"]
    return [f"sfdcflex benchmark: {machine['nproc']} CPUs, {machine['cpu']}, "
            f"Python {machine['python']}, {machine['system']}",
            f"load average (1 min): {machine['load_average_before']:.2f} before the run, "
            f"{machine['load_average']:.2f} after",
            f"{settings['rounds']} rounds x {settings['duration_s']:g} s per scenario, mode and "
            "connection count, servers taking turns; medians over rounds",
            "each server in its own process; the Salesforce/IAM/Sync stand-ins in another one",
            f"get-contact miss: {report['miss_method']}",
            f"load client: {settings['client']} (spaced: a selectors client in the bench); "
            "'client %': its CPU use;",
            "'srv us': the server's CPU per request, 'ctx': its context switches per request (from",
            "/proc); 'sys': its system calls per request (strace -f -c, a separate untimed window),",
            "'-futex': the same without futex (threads waiting on each other: strace shifts those)"]


def _calls(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def _mode_table(title: str, rows: dict[str, dict[str, dict]]) -> tuple[list[str], bool]:
    lines = ["", *title.splitlines(),
             f"{'scenario':<21}{'conns':>6}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}"
             f"{'x base':>7}{'srv us':>7}{'ctx':>6}{'sys':>6}{'-futex':>7}{'client':>7}"]
    bound = False
    counts = sorted({count for by_count in rows.values() for count in by_count}, key=int)
    for count in counts:
        for name, by_count in rows.items():
            row = by_count.get(count)
            if row is None:
                continue
            bound = bound or row["client_bound"]
            syscalls = (row.get("syscalls_per_request"), row.get("syscalls_without_futex_per_request"))
            lines.append(f"{name:<21}{count:>6}{row['rps']:>8.0f}{row['p50_ms']:>8.2f}"
                         f"{row['p99_ms']:>8.2f}{row['errors']:>7}{row['ratio_to_bare']:>7.2f}"
                         f"{row['server_us_per_request']:>7.0f}{row['switches_per_request']:>6.1f}"
                         f"{_calls(syscalls[0]):>6}{_calls(syscalls[1]):>7}"
                         f"{row['client_cpu_percent']:>6.0f}%{'!' if row['client_bound'] else ' '}")
    return lines, bound


def _against(report: dict) -> list[str]:
    compared = report["against"]
    lines = ["", f"against {compared['ref']} (commit {compared['commit'][:10]}), the same run: "
                 "server CPU per request (us)",
             f"{'mode':<18}{'scenario':<18}{'conns':>6}{'this tree':>11}{'at ref':>9}{'change':>9}"]
    for change in compared["changes"]:
        lines.append(f"{change['mode']:<18}{change['scenario']:<18}{change['connections']:>6}"
                     f"{change['current_us']:>11.0f}{change['reference_us']:>9.0f}"
                     f"{100 * change['change']:>+8.0f}%")
    found = compared["regressions"]
    lines += regression_lines(found, compared["ref"]) or [
        "check: no cached-hit row spends more than 10 % more CPU per request than at the ref"]
    return lines


def format_report(report: dict) -> str:
    """The report as a plain-text table under 100 columns."""
    settings = report["settings"]
    lines = _header(report)
    bound = False
    for key, title in MODE_TITLES:
        if report.get(key):
            table, mode_bound = _mode_table(title.format(**settings), report[key])
            lines += table
            bound = bound or mode_bound
    lines.append("x base compares with the bare server answering the same request")
    lines.append("  (the GET for hello, get-contact's POST for hit and miss)")
    if bound:
        lines.append("! the load client was near 100 % CPU: that row measures the client, not the server")
    if report.get("idle"):
        rate = settings["spaced_connections"] / settings["spaced_interval_s"]
        lines.append(f"idle, per second (part of every row's figures; the spaced rows see {rate:g} "
                     "requests a second):")
        lines += [f"  {name}: {_calls(idle['cpu_us_per_s'], '.0f')} us CPU, "
                  f"{_calls(idle['syscalls_per_s'])} system calls"
                  for name, idle in report["idle"].items()]
    if "against" in report:
        lines += _against(report)
    cold, rss = report["cold_start"], report["peak_rss_mib"]
    lines += ["", f"cold start, spawn to first 200 on /hello, median of {settings['cold_starts']}: "
              f"runtime {cold['runtime']['median_ms']:.0f} ms, bare {cold['bare']['median_ms']:.0f} ms",
              f"  (python -c pass alone: {cold['python -c pass']['median_ms']:.0f} ms; first start, "
              f"compiling bytecode: runtime {cold['runtime']['first_start_ms']:.0f} ms)",
              "peak RSS (VmHWM): " + ", ".join(f"{name} {mib:.1f} MiB" for name, mib in rss.items()),
              "", f"{'upstream calls per request':<34}{'IAM':>6}{'store':>7}{'Salesforce':>12}"
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
