"""run.py as a user runs it: start-up errors in one line, the demo, the routes banner, Ctrl-C."""
from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import call
from sfdcflex.cli import parse_args

ROOT = Path(__file__).resolve().parent.parent


class RunningServer:
    """`python run.py ...` in a subprocess, its output read line by line without blocking."""

    def __init__(self, *args: str, env: dict | None = None) -> None:
        self.process = subprocess.Popen([sys.executable, "run.py", *args], cwd=ROOT, text=True,
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
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self._pump_thread.join(5)
            while not self.lines.empty():
                self.output.append(self.lines.get())


def test_missing_setting_stops_start_up_with_one_line(tmp_path):
    env = tmp_path / ".env"
    env.write_text("# no org id\nACCOUNT_SID=AC" + "0" * 32 + "\nAUTH_TOKEN=secret-auth-token\n"
                   "SFDC_INSTANCE_URL=https://example.my.salesforce.com\nSFDC_CLIENT_ID=id\n"
                   "SFDC_CLIENT_SECRET=shh\nFLEX_INSTANCE_URL=https://flex.twilio.com\n")
    done = subprocess.run([sys.executable, "run.py", "--env", str(env), "--port", "0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30,
                          env={k: v for k, v in os.environ.items() if not k.startswith(("SFDC_", "TWILIO_"))})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "SFDC_ORG_ID" in lines[0]
    assert "secret-auth-token" not in done.stderr + done.stdout


def test_http_upstream_that_is_not_loopback_is_refused(tmp_path):
    env = tmp_path / ".env"
    env.write_text("ACCOUNT_SID=AC" + "0" * 32 + "\nAUTH_TOKEN=t\nSFDC_ORG_ID=00D5e000000AbCd\n"
                   "SFDC_INSTANCE_URL=http://example.my.salesforce.com\nSFDC_CLIENT_ID=id\n"
                   "SFDC_CLIENT_SECRET=shh\nFLEX_INSTANCE_URL=https://flex.twilio.com\n")
    done = subprocess.run([sys.executable, "-m", "sfdcflex", "--env", str(env), "--port", "0"],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "SFDC_INSTANCE_URL" in done.stderr


@pytest.mark.parametrize("args", [["--timeout", "0"], ["--max-concurrency", "0"], ["--store", "sync"]])
def test_bad_arguments_are_refused(args):
    with pytest.raises(SystemExit):
        parse_args(args)


def test_demo_starts_prints_routes_serves_and_stops_on_ctrl_c(tmp_path):
    server = RunningServer("--demo", "--port", "0", "--demo-dir", str(tmp_path))
    try:
        url = server.wait_for(r"Agent panel: (http://127\.0\.0\.1:\d+)/").group(1)
        server.wait_for(r"public\s+\S+/get-contact-account-data\s+\(alias of /get-contact\)")
        assert "DEMO MODE" in "".join(server.output)
        panel = call(url, "GET", "/")
        assert panel.status == 200 and b"<html" in panel.body.lower()
        config = call(url, "GET", "/demo-config.json").json()
        assert {a["realm_user_id"] for a in config["agents"]} >= {"alice@sfdcflex.demo", "carol@sfdcflex.demo"}
        token = call(config["iam_url"], "POST", "/demo/token", body={"realm_user_id": "alice@sfdcflex.demo"}).json()["token"]
        assert call(url, "POST", "/get-user", body={"Token": token}).json()["error"] == "not_linked"
        server.wait_for(r"404 POST /get-user \d+\.\dms")
    finally:
        code = server.stop()
    assert code == 0
    assert "sfdcflex: stopped" in "".join(server.output)
    assert "Traceback" not in "".join(server.output)


def test_demo_with_the_sync_store_links_through_sync(tmp_path):
    from sfdcflex.demo.standins.salesforce import submit_consent
    server = RunningServer("--demo", "--store", "sync", "--port", "0", "--demo-dir", str(tmp_path))
    try:
        url = server.wait_for(r"Agent panel: (http://127\.0\.0\.1:\d+)/").group(1)
        server.wait_for(r"Token store: Sync stand-in")
        config = call(url, "GET", "/demo-config.json").json()
        token = call(config["iam_url"], "POST", "/demo/token", body={"realm_user_id": "bob@sfdcflex.demo"}).json()["token"]
        start = call(url, "POST", "/auth", body={"Token": token}).json()
        location = submit_consent(start["authorize_url"], "bob@sfdcflex.demo")
        assert call(url, "GET", location[len(url):]).status == 200
        assert call(url, "POST", "/get-user", body={"Token": token}).json()["sfdc_username"] == "bob@sfdcflex.demo"
        assert not (tmp_path / "tokens.json").exists()
    finally:
        assert server.stop() == 0
