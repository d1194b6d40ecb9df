"""Shared fixtures: a runtime served on a loopback port, the product against the stand-ins, the
command line run in this process.

The helpers they use live in tests/support/, imported by name.
"""
from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path

import pytest

# With PYTHONDONTWRITEBYTECODE set (as in this project's machine image), pytest rewrote the asserts
# of every test module again on each run, and Python compiled every module again: some 1.5 s of
# CPU per run. Keep that bytecode in a folder outside the tree instead, as an unset variable
# would keep it in __pycache__; children started by tests still inherit the variable. Before
# the imports below, so that they are cached too.
if sys.dont_write_bytecode and not sys.pycache_prefix:
    sys.pycache_prefix = os.path.join(tempfile.gettempdir(), f"sfdcflex-pycache-{os.getuid()}")
    sys.dont_write_bytecode = False

from sfdcflex import cli
from sfdcflex.runtime import event
from sfdcflex.runtime.app import App, Limits
from sfdcflex.runtime.http.limits import ServerLimits
from sfdcflex.runtime.http.server import FunctionsServer, start_in_thread
from sfdcflex.runtime.http.sockets import listen
from sfdcflex.runtime.routes import build_routes, discover_functions
from tests.support.crm import Crm, seed
from tests.support.installs import NEEDS_INSTALLS, finish_installs, start_installs
from tests.support.served import AUTH_TOKEN, FIXTURE_FUNCTIONS, Served

@pytest.hookimpl(trylast=True)  # after -m and -k have deselected what will not run
def pytest_collection_modifyitems(session, config, items):
    """Start the system tests' installs now if any selected test needs them: they then run
    beside the other tests instead of before the first system test."""
    if any(NEEDS_INSTALLS & set(getattr(item, "fixturenames", ())) for item in items):
        start_installs(config)


def pytest_collection_finish(session):
    """Set aside what collection made (modules, test items: most of the heap) from the cyclic
    garbage collector: its full collections during the run then walk only what the tests make.
    They had taken some 0.7 s of the everyday loop; the tests' own objects are collected as before."""
    gc.collect()
    gc.freeze()


def pytest_unconfigure(config):
    finish_installs(config)


# A shell starts background jobs (`pytest ... &`) with SIGINT ignored, and children inherit
# that: run.py would then ignore the Ctrl+C tests send it and each stop would wait out its 10 s.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _events_built_afresh():
    """`event` is built from what was worked out for the same headers before (runtime/event.py):
    each test starts with nothing remembered, so that what it checks is worked out in it (and
    mutmut, which runs a function's mutants against the tests that ran it, sees that it does)."""
    event._views.clear()
    yield


@pytest.fixture
def serve():
    """serve(folder=..., server_limits=..., **App options) → Served; every server is stopped after
    the test."""
    started: list[Served] = []

    def start(folder: Path = FIXTURE_FUNCTIONS, *, server_limits: ServerLimits = ServerLimits(),
              **options) -> Served:
        functions = discover_functions(folder)
        options.setdefault("env", {"AUTH_TOKEN": AUTH_TOKEN, "GREETING": "hi"})
        options.setdefault("limits", Limits())
        app = App(build_routes(functions, options.pop("aliases", None)), functions, **options)
        server = FunctionsServer(listen(("127.0.0.1", 0)), app, server_limits)
        start_in_thread(server)
        served = Served(server.url, app, server)
        started.append(served)
        return served

    yield start
    for served in started:
        served.server.shutdown()
        served.server.server_close()
        served.app.close()


@pytest.fixture
def runtime(serve) -> Served:
    return serve()


@pytest.fixture
def crm_factory(tmp_path):
    from sfdcflex.demo.standins import IamStandIn, SalesforceStandIn, SyncStandIn
    made: list[Crm] = []
    sf, iam, sync = SalesforceStandIn(), IamStandIn(), SyncStandIn()
    for standin in (sf, iam, sync):
        standin.start()
    seed(sf, iam)

    def make(**settings) -> Crm:
        crm = Crm(sf, iam, sync, tmp_path, **settings)
        made.append(crm)
        return crm

    yield make
    for crm in made:
        crm.close()
    for standin in (sf, iam, sync):
        standin.stop()


@pytest.fixture
def crm(crm_factory) -> Crm:
    return crm_factory()


@pytest.fixture
def measure_children(monkeypatch, tmp_path_factory):
    """Python children this test starts (the benchmark's servers and stand-ins) add to the suite's
    coverage, when it is measured: through coverage's start-up hook (COVERAGE_PROCESS_START), each
    child writing its own data file, which pytest-cov combines at the end. Only tests that ask for
    it: a measured child starts slower, and most children run code the suite measures in-process."""
    import os
    try:
        import coverage
    except ImportError:
        return
    current = coverage.Coverage.current()
    if current is None:
        return
    rc = tmp_path_factory.mktemp("coverage") / "coveragerc"
    rc.write_text("[run]\nbranch = True\nparallel = True\nconcurrency = thread\nsource = sfdcflex\n"
                  f"data_file = {os.path.abspath(current.config.data_file)}\n")
    monkeypatch.setenv("COVERAGE_PROCESS_START", str(rc))


@pytest.fixture
def run_main(monkeypatch, capsys):
    """cli.main(*argv) here: (exit code, stdout, stderr). The logging it sets up is undone after.

    The same code as run.py, without a process start per test (tests/test_cli.py and
    tests/test_cli_serving.py)."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging._srcfile, logging.logThreads,
             logging.logProcesses, logging.logMultiprocessing)
    for name in list(os.environ):
        if name.startswith(("SFDC_", "TWILIO_", "TOKEN_", "LOG_")) or name in ("ACCOUNT_SID", "AUTH_TOKEN"):
            monkeypatch.delenv(name)

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    yield run
    for handler in root.handlers:
        if handler not in saved[0]:
            handler.close()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    (logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing) = saved[2:]
