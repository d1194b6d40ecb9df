"""tests/lanes.py, on a small project of its own: the second lane's failures fail the run and are
shown, a second lane that dies or reports fewer tests than it was given fails the run, -m and -k
select the same tests in both lanes, and `-p no:lanes` runs everything in one process."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import lanes

HERE = Path(__file__).resolve().parent


def project(folder: Path, second: str = "") -> Path:
    """Two modules: test_a (100 quick tests, 5 s expected: the first lane, which starts 5 s
    behind) and test_b (250 quick tests and one slow-marked, 14.5 s, plus `second`'s source:
    the second lane)."""
    shutil.copy(HERE / "lanes.py", folder / "lanes.py")
    (folder / "conftest.py").write_text('pytest_plugins = ["lanes"]\n')
    (folder / "pytest.ini").write_text("[pytest]\nmarkers =\n    slow: slow\n"
                                       "addopts = -p no:hypothesispytest -p no:benchmark\n")
    (folder / "test_a.py").write_text(
        "import os, pytest\n"
        "@pytest.mark.parametrize('n', range(100))\n"
        "def test_a(n):\n    open(f'ran-a-{os.getpid()}', 'a').write('x')\n")
    (folder / "test_b.py").write_text(
        "import os, pytest\n"
        "@pytest.mark.parametrize('n', range(250))\n"
        "def test_b(n):\n    open(f'ran-b-{os.getpid()}', 'a').write('x')\n"
        "@pytest.mark.slow\ndef test_b_slow():\n    pass\n" + second)
    return folder


def run(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in (lanes.CHILD, "MUTANT_UNDER_TEST")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def ran_in(folder: Path) -> dict[str, set[str]]:
    """Which module's tests ran in which process: {"a": {pid}, "b": {pid}}."""
    found: dict[str, set[str]] = {"a": set(), "b": set()}
    for marker in folder.glob("ran-*"):
        _, module, pid = marker.name.split("-")
        found[module].add(pid)
    return found


@pytest.mark.slow  # two pytest processes
def test_the_second_lane_runs_its_modules_in_another_process_and_its_failures_fail_the_run(tmp_path):
    done = run(project(tmp_path, "def test_b_fails():\n    assert 6 * 7 == 43, 'planted in lane two'\n"
                                 "def test_b_whole():\n    import lanes\n"
                                 "    open('whole', 'w').write(repr(lanes.whole_run()))\n"))
    assert done.returncode == 1, done.stdout
    processes = ran_in(tmp_path)
    assert len(processes["a"]) == len(processes["b"]) == 1 and processes["a"] != processes["b"]
    assert "second lane: 253 tests in another pytest process" in done.stdout
    assert (tmp_path / "whole").read_text() == "(353, 1)"   # the whole run, seen from lane two
    assert "planted in lane two" in done.stdout and "FAILED test_b.py::test_b_fails" in done.stdout
    assert re.search(r"^100 passed in ", done.stdout, re.M), done.stdout   # the first lane's own line


@pytest.mark.slow  # two pytest processes
def test_a_second_lane_that_dies_or_reports_fewer_tests_fails_the_run(tmp_path):
    # exits 0 at the last of its 252 tests: nothing failed, yet the run did not run them all
    done = run(project(tmp_path, "@pytest.mark.parametrize('n', [0])\n"
                                 "def test_b_zzz_exits(n):\n    os._exit(0)\n"))
    assert done.returncode == 1, done.stdout
    assert re.search(r"second lane: exit status 0, \d+ of 252 tests reported", done.stdout), done.stdout


@pytest.mark.slow  # two pytest processes
def test_the_second_lane_stops_when_the_first_dies(tmp_path):
    project(tmp_path, "def test_b_waits():\n    open('lane-two-pid', 'w').write(str(os.getpid()))\n"
                      "    import time; time.sleep(60)\n")
    env = {k: v for k, v in os.environ.items() if k not in (lanes.CHILD, "MUTANT_UNDER_TEST")}
    first = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=tmp_path,
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid_file = tmp_path / "lane-two-pid"
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline and first.poll() is None, "lane two never started its test"
            time.sleep(0.05)
        lane_two = int(pid_file.read_text())
        first.kill()   # SIGKILL: no hook of the first lane runs
        first.wait(10)
        deadline = time.monotonic() + 10
        while _alive(lane_two) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(lane_two), "lane two ran on after the first lane died"
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
        if pid_file.exists() and pid_file.read_text() and _alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Running and not a zombie (an orphan's zombie is reaped by init, later)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow  # two pytest processes
def test_a_first_lane_stopped_by_exitfirst_stops_the_second(tmp_path):
    project(tmp_path, "def test_b_waits():\n    import time; time.sleep(60)\n")
    (tmp_path / "test_a.py").write_text((tmp_path / "test_a.py").read_text()
                                        + "def test_a_fails():\n    assert False, 'planted in lane one'\n")
    started = time.monotonic()
    done = run(tmp_path, "-x")
    assert done.returncode == 1, done.stdout
    assert "planted in lane one" in done.stdout
    assert time.monotonic() - started < 30, "the run waited for the second lane's 60 s test"


@pytest.mark.slow  # two pytest processes
def test_marks_and_keywords_select_the_same_tests_in_both_lanes(tmp_path):
    done = run(project(tmp_path), "-m", "not slow", "-k", "test_a or test_b", "--durations=3")
    assert done.returncode == 0, done.stdout
    assert ran_in(tmp_path)["a"] != ran_in(tmp_path)["b"]
    assert re.search(r"^250 passed, 1 deselected in ", done.stdout, re.M), done.stdout
    assert re.search(r"^100 passed, 1 deselected in ", done.stdout, re.M), done.stdout   # of all 351
    assert done.stdout.count("slowest 3 durations") == 2   # reporting options reach lane two


@pytest.mark.slow  # two pytest processes
def test_no_lanes_runs_everything_in_this_process(tmp_path):
    done = run(project(tmp_path), "-p", "no:lanes")
    assert done.returncode == 0, done.stdout
    processes = ran_in(tmp_path)
    assert processes["a"] == processes["b"] and len(processes["a"]) == 1
    assert "second lane" not in done.stdout and re.search(r"^351 passed in ", done.stdout, re.M)


class Item:
    def __init__(self, path: str, slow: float | None = None) -> None:
        self.path = Path(path)
        self.marker = None if slow is None else pytest.mark.slow(seconds=slow).mark if slow else pytest.mark.slow.mark

    def get_closest_marker(self, name: str):
        return self.marker if name == "slow" else None


def test_the_split_keeps_modules_whole_balances_expected_time_and_keeps_the_order():
    items = ([Item("a.py") for _ in range(40)] + [Item("b.py", slow=0)] + [Item("b.py")]
             + [Item("c.py", slow=4.5) for _ in range(2)] + [Item("d.py") for _ in range(30)])
    # expected: c 9 s, b 2.05 s (a plain slow mark: 2 s), a 2 s, d 1.5 s; the first lane starts
    # 5 s behind; longest first, each to the lighter lane: c second (0 + 9), b first (5 + 2.05),
    # a first (7.05 + 2), d second (9 + 1.5)
    first, second = lanes._split(items)
    assert [i.path.name for i in first] == ["a.py"] * 40 + ["b.py"] * 2                    # 9.05 s
    assert [i.path.name for i in second] == ["c.py"] * 2 + ["d.py"] * 30                   # 10.5 s
    only = [Item("a.py"), Item("a.py")]
    assert lanes._split(only) == ([], only)               # one module: the second lane takes it


def test_the_outcome_counts_come_from_pytests_final_line():
    text = "....F\n= FAILURES =\n...\n== 1 failed, 610 passed, 2 skipped, 3 errors in 33.66s ==\n"
    assert lanes._counts(text) == {"failed": 1, "passed": 610, "skipped": 2, "errors": 3}
    assert lanes._counts("........  [ 99%]\n") == {}   # died before its final line
    assert lanes._counts("") == {}


def test_plugin_and_ini_options_are_passed_on_in_every_spelling():
    given = ["-q", "-p", "no:foo", "-pno:bar", "-o", "a=1", "--override-ini=b=2", "tests", "-x"]
    assert lanes._given(given, ("-p", "-o", "--override-ini")) == [
        "-p", "no:foo", "-pno:bar", "-o", "a=1", "--override-ini=b=2"]
