"""The README's promises that a test can keep: CI runs its test command, its options exist."""
from __future__ import annotations

import re
from pathlib import Path

from sfdcflex.cli import parse_args

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_ci_runs_exactly_the_readme_test_command():
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    command = ci_lines[-1]
    assert "pytest" in command
    assert f"\n    {command}\n" in README


def test_every_documented_option_exists():
    usage = README.split("python run.py [--demo]", 1)[1].split("`python -m sfdcflex`", 1)[0]
    options = set(re.findall(r"--[a-z-]+", usage))
    assert {"--port", "--env", "--timeout", "--max-concurrency", "--live"} <= options
    known = {action for action in parse_args([])._get_kwargs()}
    names = {name.replace("_", "-") for name, _ in known}
    assert {o[2:] for o in options} <= names


def test_every_setting_is_documented():
    from sfdcflex.config import SETTING_NAMES
    example = (ROOT / ".env.example").read_text()
    for name in SETTING_NAMES:
        assert name in README and f"{name}=" in example
