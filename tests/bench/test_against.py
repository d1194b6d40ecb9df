"""--against: the named commit checked out in a temporary worktree (gone afterwards), and the
check that fails the benchmark when a cached hit costs more than 10 % more CPU than there."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sfdcflex.bench.against import (checked_out, cpu_changes, reference_name, regression_lines,
                                    regressions)


def _git(repository: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repository), *args], check=True, capture_output=True,
                          text=True, timeout=30).stdout.strip()


@pytest.fixture
def repository(tmp_path):
    """A repository of two commits, each writing its own version into version.txt."""
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q")
    for version in ("old", "new"):
        (root / "version.txt").write_text(version)
        _git(root, "add", "version.txt")
        _git(root, "-c", "user.name=bench", "-c", "user.email=bench@example.com",
             "commit", "-q", "-m", version)
    return root


def test_the_worktree_holds_the_named_commit_and_is_removed_afterwards(repository):
    old = _git(repository, "rev-parse", "HEAD~1")
    with checked_out("HEAD~1", repository) as reference:
        assert reference.commit == old and reference.ref == "HEAD~1"
        assert (reference.root / "version.txt").read_text() == "old"
        assert _git(reference.root, "rev-parse", "HEAD") == old
        assert str(reference.root) in _git(repository, "worktree", "list")
    assert not reference.root.exists()
    assert str(reference.root) not in _git(repository, "worktree", "list")
    assert (repository / "version.txt").read_text() == "new"   # the current tree untouched


def test_the_worktree_is_removed_when_the_run_fails(repository):
    with pytest.raises(ZeroDivisionError):
        with checked_out("HEAD", repository) as reference:
            1 / 0
    assert not reference.root.exists()
    assert str(reference.root) not in _git(repository, "worktree", "list")


def test_an_unknown_ref_is_refused_before_anything_is_checked_out(repository):
    with pytest.raises(RuntimeError, match="rev-parse"):
        with checked_out("no-such-branch", repository):
            pass
    assert len(_git(repository, "worktree", "list").splitlines()) == 1


def _rows(current: dict[str, float], reference: dict[str, float]) -> dict:
    def row(us: float) -> dict:
        return {"server_us_per_request": us}
    return {name: {"1": row(current[name])} for name in current} | {
        reference_name(name): {"1": row(reference[name])} for name in reference}


def test_a_cached_hit_more_than_10_percent_dearer_than_the_reference_fails():
    modes = {"keep-alive": _rows({"get-contact hit": 111.0, "runtime hello": 50.0},
                                 {"get-contact hit": 100.0, "runtime hello": 50.0}),
             "spaced": _rows({"get-contact hit": 110.0}, {"get-contact hit": 100.0})}
    changes = cpu_changes(modes)
    assert {(c["mode"], c["scenario"]) for c in changes} == {
        ("keep-alive", "get-contact hit"), ("keep-alive", "runtime hello"), ("spaced", "get-contact hit")}
    found = regressions(changes)
    assert [(c["mode"], round(c["change"], 2)) for c in found] == [("keep-alive", 0.11)]
    first, line = regression_lines(found, "main~3")
    assert "main~3" in first and "+10 %" in first
    assert "get-contact hit, keep-alive, 1 conn: 111 us/request, 100 at the ref (+11 %)" in line
    assert regression_lines([], "main~3") == []


def test_only_the_cached_hit_is_checked_and_cheaper_is_never_a_regression():
    modes = {"keep-alive": _rows({"get-contact hit": 60.0, "runtime hello": 90.0},
                                 {"get-contact hit": 100.0, "runtime hello": 50.0})}
    assert regressions(cpu_changes(modes)) == []
    assert cpu_changes({"keep-alive": _rows({"get-contact hit": 60.0}, {})}) == []   # no reference row
