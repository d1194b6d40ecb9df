"""The part-by-part probe of a cached hit: each part of the request timed cold and warm, in a
child, and a report that lists them in the request's order."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from sfdcflex.bench.parts import REST, TOTAL, main, report

ROWS = {"recv": {"cold": 27.0, "warm": 3.2}, "log line": {"cold": 11.9, "warm": 2.6},
        REST: {"cold": 99.9, "warm": 23.9}, TOTAL: {"cold": 337.8, "warm": 75.6}}


def test_the_report_has_a_row_per_part_in_order_and_the_whole_below_a_rule():
    lines = report(ROWS, 300).splitlines()
    assert "medians of 300 requests each way" in lines[0]
    body = lines[3:]
    assert [line.split("  ")[0] for line in body if not line.startswith("-")] == list(ROWS)
    assert body[-2].startswith("-") and body[-1].startswith(TOTAL)
    assert body[0].split()[-3:] == ["3.2", "27.0", "23.8"]   # warm, cold, cold - warm
    assert max(len(line) for line in lines) < 110


@pytest.mark.parametrize("argv", [["--samples", "0"], ["--flush-mib", "-1"]])
def test_counts_below_their_floor_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as refused:
        main(argv)
    assert refused.value.code == 2 and "must be" in capsys.readouterr().err


@pytest.mark.slow  # a child with stand-ins
def test_every_part_is_on_the_hits_path_and_timed(capsys):
    folders = set(Path(tempfile.gettempdir()).glob("sfdcflex-*"))
    assert main(["--samples", "3", "--flush-mib", "1"]) == 0
    assert set(Path(tempfile.gettempdir()).glob("sfdcflex-*")) == folders   # none left behind
    rows = {}
    for line in capsys.readouterr().out.splitlines()[3:]:
        if not line.startswith("-"):
            *name, warm, cold, _ = line.split()
            rows[" ".join(name)] = (float(warm), float(cold))
    assert len(rows) == 16 and list(rows)[-2:] == [REST, TOTAL]
    for part, (warm, cold) in rows.items():   # a part no longer on the path would read 0
        assert warm > 0 and cold > 0, part
    parts = sum(warm for part, (warm, _) in rows.items() if part != TOTAL)
    assert parts == pytest.approx(rows[TOTAL][0], rel=0.5)
