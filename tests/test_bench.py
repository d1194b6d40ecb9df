"""The benchmark runs end to end, reports every scenario, and leaves no process behind."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sfdcflex.bench.main import main
from sfdcflex.bench.load import run_load
from sfdcflex.bench.servers import bare_argv, Child

SCENARIOS = ("bare", "runtime hello", "get-contact hit", "get-contact miss")


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
def test_a_tiny_run_reports_every_scenario_and_stops_its_servers(tmp_path, capsys):
    before = set(_children_of(os.getpid()))
    out = tmp_path / "bench.json"
    assert main(["--duration", "0.2", "--rounds", "1", "--connections", "1,4", "--cold-starts", "1",
                 "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["scenarios"]) == set(SCENARIOS)
    for name in SCENARIOS:
        for count in ("1", "4"):
            row = report["scenarios"][name][count]
            assert row["errors"] == 0, (name, count, row)
            assert row["rps"] > 0 and row["requests"] > 0
            assert 0 < row["p50_ms"] <= row["p99_ms"]
            assert row["ratio_to_bare"] > 0
    assert report["scenarios"]["bare"]["4"]["ratio_to_bare"] == 1.0
    assert report["cold_start"]["runtime"]["median_ms"] > 0
    assert 0 < report["peak_rss_mib"]["runtime"] < 1024
    calls = report["upstream_calls"]
    assert calls["miss, Flex token seen before"]["salesforce"] >= 1  # a miss really reached Salesforce
    assert calls["original, every uncached lookup"]["total"] == 4
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
