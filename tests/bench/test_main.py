"""The benchmark runs end to end, reports every scenario, and leaves no process behind."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sfdcflex.bench.main import main, spaced_extra
from sfdcflex.bench.load import run_load
from sfdcflex.bench.servers import bare_argv, Child

SCENARIOS = ("bare", "bare POST", "runtime hello", "get-contact hit", "get-contact miss")
REFERENCE = ("runtime hello @ref", "get-contact hit @ref")


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


def _worktrees() -> str:
    return subprocess.run(["git", "worktree", "list"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=30).stdout


@pytest.mark.slow  # benchmark child processes
def test_a_tiny_run_reports_every_scenario_and_mode_beside_the_against_commit(
        tmp_path, capsys, monkeypatch, measure_children):
    from sfdcflex.bench import main as bench_main
    from functools import partial
    from sfdcflex.bench import modes
    # Warm-ups, the strace windows and the idle watch shortened: their lengths are not what this
    # checks, and at their defaults (0.3 s, 200 requests, 2 s a server) they were 8 of its 20 s.
    monkeypatch.setattr(bench_main, "WARM_UP_SECONDS", 0.05)
    monkeypatch.setattr(modes, "SYSCALL_REQUESTS", 40)
    monkeypatch.setattr(bench_main, "idle_costs", partial(modes.idle_costs, seconds=0.2))
    before = set(_children_of(os.getpid()))
    out = tmp_path / "bench.json"
    status = main(["--duration", "0.2", "--rounds", "1", "--connections", "1", "--cold-starts", "1",
                   "--client", "python", "--spaced-connections", "6", "--spaced-interval", "0.1",
                   "--against", "HEAD", "--out", str(out)])
    report = json.loads(out.read_text())
    # the same code on both sides: a tiny run may still differ by 10 %, and then says so
    assert status == (1 if report["against"]["regressions"] else 0)
    assert set(report["scenarios"]) == set(SCENARIOS) | set(REFERENCE)
    assert set(report["spaced"]) == set(report["new_connections"]) == (
        set(SCENARIOS) - {"get-contact miss"}) | set(REFERENCE)
    rows = [(mode, name, count, row) for mode in ("scenarios", "spaced", "new_connections")
            for name, by_count in report[mode].items() for count, row in by_count.items()]
    assert {(mode, count) for mode, _, count, _ in rows} == {
        ("scenarios", "1"), ("spaced", "6"), ("new_connections", "1")}
    for mode, name, count, row in rows:
        assert row["errors"] == 0, (mode, name, count, row)
        assert row["rps"] > 0 and row["requests"] > 0
        assert 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["ratio_to_bare"] > 0 and row["server_us_per_request"] > 0
        assert row["switches_per_request"] >= 0 and row["client_bound"] in (True, False)
        if shutil.which("strace") and name != "get-contact miss":
            assert row["syscalls_per_request"] >= 1 and row["syscalls"]["total"] > 0, (mode, name)
            assert row["syscalls_without_futex_per_request"] <= row["syscalls_per_request"]
    assert report["spaced"]["get-contact hit"]["6"]["requests"] == 12   # 6 connections x 2 passes
    assert set(report["idle"]) == {"bare", "runtime", "reference"}
    assert all(idle["cpu_us_per_s"] >= 0 for idle in report["idle"].values())
    assert report["scenarios"]["bare"]["1"]["ratio_to_bare"] == 1.0
    assert report["spaced"]["bare"]["6"]["ratio_to_bare"] == 1.0
    assert report["scenarios"]["get-contact hit"]["1"]["baseline"] == "bare POST"
    assert report["settings"]["client"] == "python"
    assert report["cold_start"]["runtime"]["median_ms"] > 0
    assert 0 < report["peak_rss_mib"]["runtime"] < 1024
    calls = report["upstream_calls"]
    assert calls["miss, Flex token seen before"]["salesforce"] >= 1  # a miss really reached Salesforce
    assert calls["original, every uncached lookup"]["total"] == 4
    assert calls["log-call, new call"] == {"iam": 0, "store": 0, "salesforce": 3, "total": 3}
    assert calls["log-call, same call again"]["salesforce"] == 2
    compared = report["against"]
    assert compared["commit"] == subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True,
                                                text=True, timeout=30).stdout.strip()
    assert len(compared["changes"]) == 2 * (1 + 1 + 1)   # hello and hit, in each row of each mode
    # The reference ran the worktree's code (its directory, its PYTHONPATH), and that is gone.
    trees = report["server_trees"]
    reference_root = trees["reference"]["cwd"]
    assert "sfdcflex-against-" in reference_root and trees["reference"]["pythonpath"] == reference_root
    assert trees["runtime"]["cwd"] == str(Path(bench_main.__file__).resolve().parents[2])
    assert not Path(reference_root).exists() and reference_root not in _worktrees()
    for goal in report["goals"]:   # each verdict follows from its measured value and target
        met = goal["value"] >= goal["target"] if ">=" in goal["goal"] else goal["value"] <= goal["target"]
        assert goal["pass"] is met, goal
    assert {g["goal"]: g["pass"] for g in report["goals"]}["upstream calls on a hit = 0"] is True
    table = capsys.readouterr().out
    assert all(name in table for name in SCENARIOS + REFERENCE)
    assert "spaced keep-alive, 6 connections" in table and "a new connection per request" in table
    assert "against HEAD" in table
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


def test_the_spaced_goal_counts_only_what_the_runtime_adds_above_the_bare_server():
    def rows(spaced: float, back_to_back: float, baseline: str) -> tuple[dict, dict]:
        return ({"100": {"server_us_per_request": spaced, "baseline": baseline}},
                {"1": {"server_us_per_request": back_to_back}})
    hit, hit_b2b = rows(300.0, 100.0, "bare POST")
    bare, bare_b2b = rows(250.0, 60.0, "bare")
    report = {"spaced": {"get-contact hit": hit, "bare POST": bare},
              "scenarios": {"get-contact hit": hit_b2b, "bare POST": bare_b2b}}
    assert spaced_extra(report, "get-contact hit") == (300 - 100) - (250 - 60)
    assert spaced_extra({"spaced": {}, "scenarios": {}}, "get-contact hit") is None
