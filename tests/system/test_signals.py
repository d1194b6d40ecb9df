"""Signals to run.py as a process: SIGTERM lets an answer under way finish within the drain time,
closes idle connections at once and exits 0; a second signal stops it at once."""
from __future__ import annotations

import http.client
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.support.http import call
from tests.support.processes import PROJECT, settings_for, wait_until, write_env_file


class RunningServer:
    """`python run.py ...` in a subprocess, its output read line by line without blocking."""

    def __init__(self, *args: str, env: dict | None = None) -> None:
        self.process = subprocess.Popen([sys.executable, "run.py", *args], cwd=PROJECT, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        env={**os.environ, **(env or {})})
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None and self.lines.empty():
                    break
                continue
            self.output.append(line)
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"no line matching {pattern!r}; output so far:\n{''.join(self.output)}")

    def stop(self) -> int:
        """Ctrl-C, as a person would; the rest of the output lands in `output`."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self._collect()
            raise AssertionError("run.py did not stop within 10 s of Ctrl-C; its output:\n"
                                 + "".join(self.output[-40:])) from None
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self._collect()

    def _collect(self) -> None:
        self._pump_thread.join(5)
        while not self.lines.empty():
            self.output.append(self.lines.get())


@pytest.fixture
def linked_server(tmp_path):
    """run.py --env FILE against the stand-ins, with alice linked; yields (server, url, sf, token)."""
    from tests.support.crm import seed
    from sfdcflex.demo.standins import IamStandIn, SalesforceStandIn, SyncStandIn
    standins = sf, iam, sync = SalesforceStandIn(), IamStandIn(), SyncStandIn()
    for standin in standins:
        standin.start()
    seed(sf, iam)
    env = write_env_file(tmp_path / "test.env", settings_for(sf, iam, sync, tmp_path / "store" / "tokens.json"))
    server = RunningServer("--env", str(env), "--port", "0", "--timeout", "5")
    try:
        url = server.wait_for(r"sfdcflex listening on (\S+)").group(1)
        token = iam.issue_token("alice@example.com")
        start = call(url, "POST", "/auth", body={"Token": token, "origin": url})
        from sfdcflex.demo.standins.salesforce import submit_consent
        location = submit_consent(start.json()["authorize_url"], "alice@example.com")
        assert call(url, "GET", location[len(url):]).status == 200
        yield server, url, sf, token
    finally:
        server.stop()
        for standin in standins:
            standin.stop()


def _lookup_in_thread(url: str, token: str) -> tuple[threading.Thread, list]:
    answers: list = []

    def lookup() -> None:
        try:
            answers.append(call(url, "POST", "/get-contact", body={"Token": token, "phone": "(415) 555-0101"}))
        except OSError as exc:
            answers.append(exc)

    thread = threading.Thread(target=lookup)
    thread.start()
    return thread, answers


@pytest.mark.slow
def test_sigterm_during_a_2_second_upstream_call_still_answers_it_and_exits_0(linked_server):
    server, url, sf, token = linked_server
    idle = http.client.HTTPConnection(url.split("//")[1], timeout=5)
    idle.request("GET", "/healthz")
    assert idle.getresponse().read().startswith(b'{"status":"ok"')
    sf.fail_next("search", stall=2.0)
    searches = sf.calls["search"]
    thread, answers = _lookup_in_thread(url, token)
    assert wait_until(lambda: sf.calls["search"] > searches, 5)   # stalled at Salesforce now
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert idle.sock.recv(1) == b""   # an idle keep-alive connection is closed at once
    thread.join(10)
    assert server.process.wait(10) == 0
    assert time.monotonic() - signalled < 5   # within the drain time (--timeout 5)
    assert answers[0].status == 200 and answers[0].json()["cust_name"] == "Ada Lovelace"
    server.stop()
    output = "".join(server.output)
    assert re.search(r"INFO 200 POST /get-contact \d+\.\dms", output)   # its log line was flushed
    assert "sfdcflex: stopped" in output and "Traceback" not in output


@pytest.mark.slow
def test_a_second_signal_stops_at_once(linked_server):
    server, url, sf, token = linked_server
    sf.fail_next("search", stall=30)
    searches = sf.calls["search"]
    thread, answers = _lookup_in_thread(url, token)
    assert wait_until(lambda: sf.calls["search"] > searches, 5)
    server.process.send_signal(signal.SIGTERM)
    server.wait_for(r"sfdcflex: stopping")
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(10) == 1
    assert time.monotonic() - signalled < 2
    thread.join(10)
    assert isinstance(answers[0], OSError)   # cut: the connection closed without an answer
    server.stop()
    assert "stopped at once" in "".join(server.output)
