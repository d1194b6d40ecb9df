"""The benchmark runs end to end, reports every scenario, and leaves no process behind."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sfdcflex.bench.main import main
from sfdcflex.bench.load import run_load
from sfdcflex.bench.servers import bare_argv, Child

SCENARIOS = ("bare", "bare POST", "runtime hello", "get-contact hit", "get-contact miss")


def _children_of(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is `pid`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        if int(parent) == pid and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.mark.slow  # benchmark child processes
def test_a_tiny_run_reports_every_scenario_and_stops_its_servers(tmp_path, capsys, monkeypatch,
                                                                 measure_children):
    from sfdcflex.bench import main as bench_main
    monkeypatch.setattr(bench_main, "WARM_UP_SECONDS", 0.05)   # a warm-up is not what this checks
    before = set(_children_of(os.getpid()))
    out = tmp_path / "bench.json"
    assert main(["--duration", "0.2", "--rounds", "1", "--connections", "1,4", "--cold-starts", "1",
                 "--client", "python", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["scenarios"]) == set(SCENARIOS)
    for name in SCENARIOS:
        for count in ("1", "4"):
            row = report["scenarios"][name][count]
            assert row["errors"] == 0, (name, count, row)
            assert row["rps"] > 0 and row["requests"] > 0
            assert 0 < row["p50_ms"] <= row["p99_ms"]
            # server CPU comes from /proc in 10 ms clock ticks: a 0.2 s row may read none
            assert row["ratio_to_bare"] > 0 and row["server_us_per_request"] >= 0
            assert 0 < row["client_cpu_percent"] and row["client_bound"] in (True, False)
    assert sum(row["server_us_per_request"] for rows in report["scenarios"].values()
               for row in rows.values()) > 0   # measured, if too coarse for each tiny row
    assert report["scenarios"]["bare"]["4"]["ratio_to_bare"] == 1.0
    assert report["scenarios"]["get-contact hit"]["4"]["baseline"] == "bare POST"
    assert report["settings"]["client"] == "python"
    assert report["cold_start"]["runtime"]["median_ms"] > 0
    assert 0 < report["peak_rss_mib"]["runtime"] < 1024
    calls = report["upstream_calls"]
    assert calls["miss, Flex token seen before"]["salesforce"] >= 1  # a miss really reached Salesforce
    assert calls["original, every uncached lookup"]["total"] == 4
    assert calls["log-call, new call"] == {"iam": 0, "store": 0, "salesforce": 3, "total": 3}
    assert calls["log-call, same call again"]["salesforce"] == 2
    assert len(report["goals"]) >= 8
    for goal in report["goals"]:   # each verdict follows from its measured value and target
        met = goal["value"] >= goal["target"] if ">=" in goal["goal"] else goal["value"] <= goal["target"]
        assert goal["pass"] is met, goal
    assert {g["goal"]: g["pass"] for g in report["goals"]}["upstream calls on a hit = 0"] is True
    table = capsys.readouterr().out
    assert all(name in table for name in SCENARIOS)
    for goal in report["goals"]:   # the table says each goal's own verdict
        verdict = "PASS" if goal["pass"] else "MISS"
        assert any(line.strip().startswith(f"{verdict}  {goal['goal']}") for line in table.splitlines()), goal
    assert max(len(line) for line in table.splitlines()) <= 100
    assert set(_children_of(os.getpid())) <= before


@pytest.mark.slow  # benchmark child processes
def test_the_load_generator_counts_refused_connections_as_errors(tmp_path):
    bare = Child(bare_argv(), tmp_path / "pycache")
    try:
        url = bare.wait_for_url()
    finally:
        bare.kill()  # now nothing listens on that port
    result = run_load(url, lambda: ("GET", "/", b"", {}), connections=2, duration=0.2, max_requests=50)
    assert result.ok == 0 and result.errors > 0


@pytest.mark.slow  # benchmark child processes
def test_the_hostile_scenarios_run_end_to_end_and_stop_their_servers(tmp_path, monkeypatch, capsys,
                                                                    measure_children):
    from sfdcflex.bench import hostile
    for name, value in (("BIG_BODY", 256 * 1024), ("HELD_BODIES", 3), ("IDLE_CONNECTIONS", 40),
                        ("BAD_TOKEN_REQUESTS", 30), ("WAITING_CLIENTS", 80), ("SETTLE_SECONDS", 0.3),
                        ("CPU_SECONDS", 0.2), ("MIN_SECONDS", 0.3), ("STREAM_EXTRA_SECONDS", 0.5)):
        monkeypatch.setattr(hostile, name, value)
    before = set(_children_of(os.getpid()))
    out = tmp_path / "hostile.json"
    assert main(["--hostile", "--rounds", "1", "--duration", "0.3", "--out", str(out)]) == 0
    report = json.loads(out.read_text())["medians"]
    assert report["bad_token"] == {"requests": 32, "iam_calls": 1}  # 4 per connection
    assert report["held_bodies"]["held"] == 3 and report["idle_connections"]["connected"] == 40
    assert report["fd_limit"]["accept_failures_logged"] >= 1 and 0 <= report["fd_limit"]["recovered_in_s"] < 15
    assert report["streams"]["errors"] == 0 and report["calm"]["errors"] == 0
    assert "IAM calls for 32 requests with one bad token: 1" in capsys.readouterr().out
    assert set(_children_of(os.getpid())) <= before
