"""The WSGI adapter on real hosts (waitress, gunicorn gthread) installed in a temp folder by the
serving-choices benchmark's install (tests/system/conftest.py): functions run on the host's
worker thread, and the watchdog still answers 504 at the time limit; the benchmark runs."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.http import call
from tests.support.served import FIXTURE_FUNCTIONS

pytestmark = pytest.mark.slow
PROJECT = Path(__file__).resolve().parents[2]
APP = f'''
from pathlib import Path
from sfdcflex.runtime.app import App, Limits
from sfdcflex.runtime.routes import build_routes, discover_functions
from sfdcflex.runtime.wsgi import WSGIApp

functions = discover_functions(Path({str(FIXTURE_FUNCTIONS)!r}))
application = WSGIApp(App(build_routes(functions, None), functions, env={{"GREETING": "hi"}},
                          limits=Limits(timeout=0.5)))
'''


@pytest.fixture(scope="module")
def app_folder(tmp_path_factory) -> Path:
    """A folder with the app the hosts serve."""
    folder = tmp_path_factory.mktemp("wsgi-hosts-app")
    (folder / "wsgi_hosts_app.py").write_text(APP)
    return folder


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("host", ["waitress", "gunicorn"])
def test_a_real_host_runs_functions_on_its_threads_and_answers_504_at_the_limit(app_folder, hosts_site,
                                                                               host):
    from sfdcflex.bench.hosts import host_argv
    port = _free_port()
    env = {"PYTHONPATH": f"{app_folder}:{hosts_site}:{PROJECT}", "PATH": "/usr/bin:/bin"}
    server = subprocess.Popen(host_argv(host, port, "wsgi_hosts_app:application", threads=4), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if call(url, "GET", "/hello").status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        assert call(url, "GET", "/hello").json() == {"ok": True}
        thread = call(url, "GET", "/thread-name").json()["thread"]
        assert not thread.startswith("fn"), thread  # the host's own worker thread
        started = time.monotonic()
        answer = call(url, "POST", "/slow", body={"wait": 2.5})
        assert answer.status == 504 and answer.json()["error"] == "timeout"
        assert time.monotonic() - started < 1.5  # at the 0.5 s limit, not when the function ends
    finally:
        # The whole process group at once: an orderly stop waits for /slow, still running, to end.
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)


def test_the_serving_choices_benchmark_runs_and_reports_every_host(hosts_site, capsys):
    from sfdcflex.bench.hosts import main
    assert main(["--rounds", "1", "--duration", "0.1", "--client", "python", "--site", str(hosts_site)]) == 0
    table = capsys.readouterr().out
    for host in ("built-in", "waitress", "waitress floor", "gunicorn", "gunicorn floor"):
        assert f"\n{host} " in table
    rows = [line.split() for line in table.splitlines() if line.startswith(("built-in", "waitress", "gunicorn"))]
    assert len(rows) == 8 and all(row[-1] == "0" for row in rows)  # no errors anywhere
