"""`--against REF`: another commit's runtime beside this tree's, in the same run.

The commit is checked out with `git worktree add --detach` into a temporary folder, removed
afterwards even when the run fails (`git worktree remove --force`, then `git worktree prune`).
Its runtime is started from that folder (its working directory and PYTHONPATH), with its own
functions, so the old code runs with the same settings and stand-ins as the current one.

The check: the cached hit's CPU per request (the median over rounds) may not exceed the
reference's by more than REGRESSION_LIMIT in any row, or the benchmark exits non-zero.
"""
from __future__ import annotations

import contextlib
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

REPOSITORY = Path(__file__).resolve().parents[2]
REGRESSION_LIMIT = 0.10
CHECKED_SCENARIO = "get-contact hit"
REFERENCE_SUFFIX = " @ref"


@dataclass(frozen=True)
class Reference:
    """A commit checked out in a temporary worktree: what was asked for, the commit, the folder."""

    ref: str
    commit: str
    root: Path


def _git(*args: str, cwd: Path = REPOSITORY) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()[:300]}")
    return done.stdout.strip()


@contextlib.contextmanager
def checked_out(ref: str, repository: Path = REPOSITORY) -> Iterator[Reference]:
    """The commit `ref` names, in a temporary worktree that is removed on the way out."""
    commit = _git("rev-parse", "--verify", f"{ref}^{{commit}}", cwd=repository)
    with tempfile.TemporaryDirectory(prefix="sfdcflex-against-") as parent:
        root = Path(parent) / "tree"
        _git("worktree", "add", "--detach", str(root), commit, cwd=repository)
        try:
            yield Reference(ref, commit, root)
        finally:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                _git("worktree", "remove", "--force", str(root), cwd=repository)
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                _git("worktree", "prune", cwd=repository)


def reference_name(scenario: str) -> str:
    return scenario + REFERENCE_SUFFIX


def cpu_changes(modes: dict[str, dict[str, dict[str, dict]]]) -> list[dict]:
    """Each row the reference also ran: both CPU figures per request and the relative change."""
    changes = []
    for mode, scenarios in modes.items():
        for name, by_count in scenarios.items():
            reference = scenarios.get(reference_name(name))
            if name.endswith(REFERENCE_SUFFIX) or reference is None:
                continue
            for count, row in by_count.items():
                current, before = row["server_us_per_request"], reference[count]["server_us_per_request"]
                changes.append({"mode": mode, "scenario": name, "connections": count,
                                "current_us": current, "reference_us": before,
                                "change": (current - before) / before if before else 0.0})
    return changes


def regressions(changes: list[dict], limit: float = REGRESSION_LIMIT) -> list[dict]:
    """The cached hit's rows whose CPU per request grew by more than `limit` (0.10: 10 %)."""
    return [c for c in changes if c["scenario"] == CHECKED_SCENARIO and c["change"] > limit]


def regression_lines(found: list[dict], ref: str) -> list[str]:
    """A line per regression, under 100 columns (`ref` is said once, in the first)."""
    lines = [f"REGRESSION against {ref}: a cached hit costs more than "
             f"+{100 * REGRESSION_LIMIT:.0f} % CPU per request"] if found else []
    return lines + [f"REGRESSION {c['scenario']}, {c['mode']}, {c['connections']} conn: "
                    f"{c['current_us']:.0f} us/request, {c['reference_us']:.0f} at the ref "
                    f"(+{100 * c['change']:.0f} %)" for c in found]
