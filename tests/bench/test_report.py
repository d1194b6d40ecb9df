"""The printed report: every mode's table, the --against comparison and its regressions, under
100 columns whatever the figures."""
from __future__ import annotations

from sfdcflex.bench.against import regressions
from sfdcflex.bench.report import format_report


def _row(us: float, syscalls: float | None = 3.0) -> dict:
    return {"rps": 12345.0, "p50_ms": 0.12, "p99_ms": 1234.5, "errors": 0, "ratio_to_bare": 0.5,
            "server_us_per_request": us, "switches_per_request": 12.5, "client_cpu_percent": 95.0,
            "client_bound": True, "syscalls_per_request": syscalls,
            "syscalls_without_futex_per_request": syscalls}


def _report() -> dict:
    rows = {"get-contact hit": {"16": _row(1234.0)}, "get-contact hit @ref": {"16": _row(100.0, None)}}
    changes = [{"mode": mode, "scenario": "get-contact hit", "connections": count,
                "current_us": 1234.0, "reference_us": 100.0, "change": 11.34}
               for mode, count in (("keep-alive", "16"), ("spaced", "100"), ("new-connections", "16"))]
    return {
        "machine": {"nproc": 2, "cpu": "AMD EPYC", "python": "3.11.7", "system": "Linux x86_64",
                    "load_average": 6.0, "load_average_before": 5.0},
        "settings": {"rounds": 3, "duration_s": 2.0, "client": "wrk", "cold_starts": 5,
                     "spaced_connections": 100, "spaced_interval_s": 1.0},
        "miss_method": "200 numbers", "scenarios": rows, "new_connections": rows,
        "spaced": {"get-contact hit": {"100": _row(1234.0)}, "get-contact hit @ref": {"100": _row(1.0)}},
        "against": {"ref": "a-rather-long-branch-name~12", "commit": "0123456789abcdef" * 2 + "01234567",
                    "changes": changes, "regressions": regressions(changes)},
        "cold_start": {name: {"median_ms": 100.0, "first_start_ms": 200.0}
                       for name in ("runtime", "bare", "python -c pass")},
        "peak_rss_mib": {"runtime": 29.0, "bare": 29.0, "reference": 29.0},
        "idle": {"runtime": {"cpu_us_per_s": 2713.2, "syscalls_per_s": 34.5},
                 "bare": {"cpu_us_per_s": 120.0, "syscalls_per_s": None}},
        "upstream_calls": {"hit": {"iam": 0, "store": 0, "salesforce": 0, "total": 0}},
        "goals": [{"goal": "spaced hit <= 15 us above back to back (net)", "value": 373.0,
                   "target": 15, "unit": "us", "pass": False}]}


def test_every_mode_and_each_regression_is_printed_under_100_columns():
    table = format_report(_report())
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert "spaced keep-alive, 100 connections each sending every 1 s" in table
    assert "a new connection per request (Connection: close)" in table
    assert "against a-rather-long-branch-name~12 (commit 0123456789)" in table
    regression_rows = [line for line in lines if line.startswith("REGRESSION get-contact hit")]
    assert len(regression_rows) == 3 and all("(+1134 %)" in line for line in regression_rows)
    assert any(line.startswith("get-contact hit @ref") and " - " in line for line in lines)  # no strace
    assert "! the load client was near 100 % CPU" in table
    assert "the spaced rows see 100 requests a second" in table
    assert "  runtime: 2713 us CPU, 34.5 system calls" in lines and "  bare: 120 us CPU, - system calls" in lines
