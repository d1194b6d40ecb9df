"""The suite's own promises: README's everyday command selects what it says, mutmut's setup holds."""
from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SETUP = configparser.ConfigParser()
SETUP.read(ROOT / "setup.cfg")


def _collected(*args: str) -> set[str]:
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "--no-cov", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return {line.split("::")[0] + "::" + line.split("::")[1].split("[")[0]
            for line in done.stdout.splitlines() if "::" in line}


HEAVY = ("tests/system/test_reliability_load.py::test_sixteen_connections_for_four_seconds",
         "tests/system/test_reliability_crash.py::test_sigkill_mid_burst_twelve_times_leaves_old_or_new_tokens",
         "tests/bench/test_main.py::test_a_tiny_run_reports_every_scenario_and_mode_beside_the_against_commit",
         "tests/browser/test_demo_browser.py::test_a_person_links_looks_up_opens_the_record_and_disconnects")


@pytest.mark.slow  # two more pytest processes
def test_the_everyday_command_leaves_out_exactly_the_slow_tests(request):
    """A second pytest, as README's command runs it, on the heavy tests' files and one everyday
    file (collecting the whole suite again would cost seconds); the share of slow tests in the
    whole suite is read off this run's own selection (pytest's session items) when it is the
    whole suite."""
    command = 'python -m pytest -m "not slow"'
    assert f"\n    {command}\n" in README
    assert "slow:" in SETUP["tool:pytest"]["markers"]
    files = sorted({test.split("::")[0] for test in HEAVY}) + ["tests/test_cache.py"]
    everyday = _collected("-m", "not slow", *files)
    left_out = _collected("-m", "slow", *files)
    assert set(HEAVY) <= left_out and everyday.isdisjoint(left_out)
    assert any("test_cache.py" in test for test in everyday)
    assert not any("test_cache.py" in test for test in left_out)
    selected = request.session.items   # this run's selection
    slow = sum(1 for item in selected if item.get_closest_marker("slow"))
    if len(selected) > 900:   # the whole suite (with the slow tests, as this one is slow)
        assert slow < 60, (slow, len(selected))


def test_mutmut_is_set_up_as_readme_says():
    section = SETUP["mutmut"]
    assert section["source_paths"].strip() == "sfdcflex/"
    also_copy = section["also_copy"].split()
    assert {"functions/", "run.py", "README.md", ".env.example", ".ci/"} <= set(also_copy)
    assert all((ROOT / path).exists() for path in also_copy)
    assert {"sfdcflex/demo/*", "sfdcflex/bench/*"} <= set(section["do_not_mutate"].split())
    assert "not slow" in section["pytest_add_cli_args"]
    assert "mutants/" in (ROOT / ".gitignore").read_text().split()
    commands = re.findall(r"\n    (.*mutmut run .*)\n", README)
    assert commands, "README shows no mutmut command"
    modules = re.findall(r'"sfdcflex\.([a-z_.]+)\.\*"', commands[0])
    assert modules and all((ROOT / "sfdcflex" / (m.replace(".", "/") + ".py")).exists() for m in modules)
