"""The cold-path probe: every scenario timed cold and warm in a child per tree, and its net."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from sfdcflex.bench.cold import SCENARIOS, combined, main, net_us, report

ROWS = {"bare GET": {"cold": 300.0, "warm": 50.0}, "runtime hello": {"cold": 290.0, "warm": 52.0},
        "bare POST": {"cold": 320.0, "warm": 90.0}, "get-contact hit": {"cold": 335.0, "warm": 75.0}}


def test_the_net_is_the_hits_cold_premium_less_the_bare_posts():
    assert net_us(ROWS) == (335.0 - 75.0) - (320.0 - 90.0) == 30.0


def test_children_combine_by_the_median_of_each_figure():
    slower = {name: {kind: value + 10 for kind, value in row.items()} for name, row in ROWS.items()}
    faster = {name: {kind: value - 4 for kind, value in row.items()} for name, row in ROWS.items()}
    assert combined([slower, ROWS, faster]) == ROWS
    assert combined([ROWS, slower])["bare GET"] == {"cold": 305.0, "warm": 55.0}


def test_the_report_has_a_row_per_tree_and_scenario_and_each_trees_net():
    lines = report({"this tree": [ROWS], "abc1234": [ROWS, ROWS]}, 300).splitlines()
    assert "medians of 300 cold/warm pairs" in lines[0]
    for tree in ("this tree", "abc1234"):
        rows = [line for line in lines if line.startswith(tree)]
        assert [name for name in SCENARIOS if any(name in row for row in rows)] == list(SCENARIOS)
        assert rows[-1].endswith("30.0 µs (children: " + ", ".join(["30.0"] * (1 if tree == "this tree" else 2)) + ")")
    assert max(len(line) for line in lines) < 110


@pytest.mark.parametrize("argv", [["--samples", "0"], ["--children", "0"], ["--flush-mib", "-1"]])
def test_counts_below_their_floor_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as refused:
        main(argv)
    assert refused.value.code == 2 and "must be" in capsys.readouterr().err


@pytest.mark.slow  # children with stand-ins, and a worktree of HEAD
def test_the_probe_serves_every_scenario_in_a_child_per_tree(capsys, measure_children):
    folders = set(Path(tempfile.gettempdir()).glob("sfdcflex-cold-*"))
    assert main(["--samples", "2", "--flush-mib", "1", "--children", "1", "--against", "HEAD"]) == 0
    assert set(Path(tempfile.gettempdir()).glob("sfdcflex-cold-*")) == folders   # none left behind
    lines = capsys.readouterr().out.splitlines()
    for tree in ("this tree", "HEAD"):
        rows = [line for line in lines if line.startswith(tree)]
        timed, net = rows[:-1], rows[-1]
        assert len(timed) == len(SCENARIOS)
        for name, line in zip(SCENARIOS, timed):
            assert name in line
            cold, warm = (float(value) for value in line.split()[-3:-1])
            assert cold > 0 and warm > 0
        assert "net (the hit's cold - warm less the bare POST's)" in net
