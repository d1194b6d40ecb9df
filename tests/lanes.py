"""Two lanes: a run of many tests hands part of them, whole modules, to a second pytest process.

Most tests here wait more than they compute (a time limit, a timeout, a server's answer, a child
process), and one pytest process runs Python on one core at a time, so on two cores a second
process nearly halves the run. This plugin (loaded by conftest.py; `-p no:lanes` turns it off):

- after collection and deselection, splits the selected tests into two lanes of about the same
  expected time (whole modules, so module-scoped fixtures are still made once; a test marked
  `slow(seconds=N)` counts N s, any other `slow` test 2 s, any other test 0.05 s, roughly what
  they take here; the first lane starts FIRST_LANE_SECONDS behind, for collecting the whole run);
- starts `python -m pytest` on the second lane's module files, with this run's -m, -k and
  --deselect (so it selects the same tests of them), its output to a file, and runs the first
  lane itself meanwhile;
- the second lane stops, as on Ctrl-C, if the first one dies (SIGKILL, or SIGTERM, which pytest
  does not catch), instead of running on alone;
- at the end waits for the second lane (at most LANE_TIMEOUT; stops it when -x, --maxfail or
  Ctrl-C ended the first lane early), prints its outcome before the
  final line (its whole output when it failed), and fails the run when the second lane failed,
  did not finish, or did not run every test it was given.

It stays out of the way where a second process would not help or would get in the way: fewer
than MIN_TESTS tests, tests named by node id (`file::test`), --collect-only, coverage (`--cov`:
one process measures all), `--pdb`, mutmut's runs, and in the second lane itself.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

MIN_TESTS = 200
LANE_TIMEOUT = 1200.0
SLOW_SECONDS, OTHER_SECONDS = 2.0, 0.05
FIRST_LANE_SECONDS = 5.0   # what the first lane spends collecting every test before it runs one
CHILD = "SFDCFLEX_TEST_LANE"   # set in the second lane's environment: "TESTS,SLOW" of the whole run
_whole_run = (0, 0)


def whole_run() -> tuple[int, int]:
    """(tests, slow tests) this run selected, across both lanes; (0, 0) before collection."""
    return _whole_run


class SecondLane:
    """The second pytest process: its tests, its output file, its outcome."""

    def __init__(self, config: pytest.Config, items: list) -> None:
        self.count = len(items)
        self.folder = Path(tempfile.mkdtemp(prefix="sfdcflex-lane-"))
        self.output = self.folder / "output.txt"
        paths = sorted({str(item.path.relative_to(config.rootpath)) for item in items})
        argv = [sys.executable, "-m", "pytest", *_passed_on(config), *paths]
        self.command = " ".join(argv[1:])
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(argv, cwd=config.rootpath, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL,
                                            env={**os.environ, CHILD: "%d,%d" % whole_run()})
        self.returncode: int | None = None

    def wait(self) -> int:
        if self.returncode is None:
            try:
                self.returncode = self.process.wait(LANE_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                self.returncode = -1
        return self.returncode

    def reported(self) -> int:
        """How many outcomes its final line reports (0 when it died before writing one)."""
        return sum(_counts(self.text()).values())

    def whole(self) -> bool:
        """It ended well and reported every test it was given."""
        return self.wait() == pytest.ExitCode.OK and self.reported() >= self.count

    def stop(self) -> None:
        """As Ctrl-C would (its fixtures tear down), then SIGKILL if it takes over 10 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.returncode is None:
            self.returncode = self.process.returncode

    def text(self) -> str:
        return self.output.read_text(errors="replace")


def _passed_on(config: pytest.Config) -> list[str]:
    """The options of this run that select the second lane's tests and shape how it reports."""
    option = config.option
    args = ["-p", "no:cacheprovider", *_given(config.invocation_params.args, ("-p", "-o", "--override-ini"))]
    if option.markexpr:
        args += ["-m", option.markexpr]
    if option.keyword:
        args += ["-k", option.keyword]
    for nodeid in option.deselect or ():
        args.append(f"--deselect={nodeid}")
    verbosity = option.verbose
    args += ["-" + "v" * verbosity] if verbosity > 0 else ["-" + "q" * -verbosity] if verbosity < 0 else []
    args += [f"--tb={option.tbstyle}", f"--capture={option.capture}", f"-r{option.reportchars}"]
    if option.maxfail:
        args.append(f"--maxfail={option.maxfail}")
    if option.durations is not None:
        args.append(f"--durations={option.durations}")
    if option.durations_min is not None:
        args.append(f"--durations-min={option.durations_min}")
    for warning in option.pythonwarnings or ():
        args += ["-W", warning]
    return args


def _given(args, names: tuple[str, ...]) -> list[str]:
    """The command line's `NAME VALUE`, `NAMEVALUE` and `--NAME=VALUE` options among `names`."""
    found, args = [], list(args)
    for index, arg in enumerate(args):
        for name in names:
            if arg == name and index + 1 < len(args):
                found += [arg, args[index + 1]]
            elif arg.startswith(name + "=") or (not name.startswith("--") and arg.startswith(name)
                                                and arg != name):
                found.append(arg)
    return found


def _wanted(config: pytest.Config, items: list) -> bool:
    return not (len(items) < MIN_TESTS or os.environ.get(CHILD) or "MUTANT_UNDER_TEST" in os.environ
                or any("::" in arg for arg in config.args)
                or config.option.collectonly or config.option.usepdb
                or getattr(config.option, "cov_source", None))


def expected_seconds(item) -> float:
    slow = item.get_closest_marker("slow")
    return float(slow.kwargs.get("seconds", SLOW_SECONDS)) if slow else OTHER_SECONDS


def _split(items: list) -> tuple[list, list]:
    """Whole modules into two lanes of about equal expected time (longest first, each to the
    lighter lane); each lane keeps the collection order."""
    weight: dict[Path, float] = {}
    for item in items:
        weight[item.path] = weight.get(item.path, 0.0) + expected_seconds(item)
    lanes: tuple[set, set] = (set(), set())
    load = [FIRST_LANE_SECONDS, 0.0]
    for path in sorted(weight, key=lambda p: (-weight[p], str(p))):
        lighter = 0 if load[0] <= load[1] else 1
        lanes[lighter].add(path)
        load[lighter] += weight[path]
    return ([item for item in items if item.path in lanes[0]],
            [item for item in items if item.path in lanes[1]])


_second: list[SecondLane] = []


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get(CHILD):
        threading.Thread(target=_stop_when_orphaned, args=(os.getppid(),), name="lane-watch",
                         daemon=True).start()


def _stop_when_orphaned(parent: int) -> None:
    """In the second lane: once the first lane is gone, stop as Ctrl-C would (fixtures tear
    down), or with SIGTERM where SIGINT is ignored."""
    while os.getppid() == parent:
        time.sleep(0.5)
    ignored = signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, None)
    os.kill(os.getpid(), signal.SIGTERM if ignored else signal.SIGINT)


@pytest.hookimpl(trylast=True)   # after -m and -k have deselected
def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    global _whole_run
    if os.environ.get(CHILD):
        tests, slow = os.environ[CHILD].split(",")
        _whole_run = (int(tests), int(slow))
    else:
        _whole_run = (len(items), sum(1 for item in items if item.get_closest_marker("slow")))
    if not _wanted(config, items):
        return
    first, second = _split(items)
    if not first or not second:
        return   # one module, or one lane's worth: a second process would only cost its start
    _second.append(SecondLane(config, second))
    items[:] = first


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _second:
        return
    lane = _second[0]
    if session.shouldfail or session.shouldstop or exitstatus == pytest.ExitCode.INTERRUPTED:
        lane.stop()   # -x, --maxfail or Ctrl-C ended this lane early: the run ends now
    if not lane.whole() and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not _second:
        return
    lane = _second[0]
    whole, text = lane.whole(), lane.text()
    terminalreporter.write_sep("=" if whole else "!", f"second lane: {lane.count} tests in another pytest process")
    if whole:   # its report without the progress lines: any sections (durations...), its final line
        lines = text.splitlines()
        sections = [n for n, line in enumerate(lines) if line.startswith("=")]
        terminalreporter.write_line("\n".join(lines[sections[0]:]) if sections else _last_line(text))
    else:
        terminalreporter.write(text)
        terminalreporter.write_line(f"second lane: exit status {lane.wait()}, {lane.reported()} of {lane.count} "
                                    f"tests reported; it ran: {lane.command}", red=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    for lane in _second:
        lane.stop()
        lane.output.unlink(missing_ok=True)
        lane.folder.rmdir()
    _second.clear()


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip("= ") if lines else "(no output)"


def _counts(text: str) -> dict[str, int]:
    """The outcome counts of pytest's final line: {"passed": 612, "failed": 1, ...}."""
    found = {}
    for number, outcome in re.findall(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)\b",
                                      _last_line(text)):
        found[outcome] = int(number)
    return found
