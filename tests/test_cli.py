"""run.py as a user runs it: start-up errors in one line, the demo, the routes banner, Ctrl-C."""
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


# --- operating it: --version, --check, signals, rehearsal ---------------------------------

def run_py(*args: str, cwd: Path = ROOT, timeout: float = 30) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SFDC_", "TWILIO_", "TOKEN_", "LOG_"))}
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


def good_settings(tmp_path: Path) -> str:
    return ("ACCOUNT_SID=AC" + "0" * 32 + "\nAUTH_TOKEN=secret-auth-token\nSFDC_ORG_ID=00D5e000000AbCd\n"
            "SFDC_INSTANCE_URL=https://example.my.salesforce.com\nSFDC_CLIENT_ID=id\n"
            f"SFDC_CLIENT_SECRET=shh\nFLEX_INSTANCE_URL=https://flex.twilio.com\n"
            f"TOKEN_STORE_PATH={tmp_path / 'store' / 'tokens.json'}\n")


def test_version():
    from sfdcflex import __version__
    done = run_py("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"sfdcflex {__version__}"


def test_check_prints_every_mistake_at_once_and_serves_nothing(tmp_path):
    env = tmp_path / "three-mistakes.env"
    env.write_text(good_settings(tmp_path)
                   .replace("ACCOUNT_SID=AC" + "0" * 32, "ACCOUNT_SID=ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
                   .replace("SFDC_CLIENT_ID=", "SFDC_CLEINT_ID=") + "CACHE_TTL=forever\n")
    for args in (["--check"], ["--port", "0"]):   # start-up runs the same validation
        done = run_py("--env", str(env), *args)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert lines == [
            "sfdcflex: config: SFDC_CLEINT_ID is not a setting sfdcflex knows; did you mean SFDC_CLIENT_ID?",
            "sfdcflex: config: ACCOUNT_SID still holds the placeholder from .env.example; put your own value there",
            "sfdcflex: config: CACHE_TTL must be a number from 0 to 86400",
            "sfdcflex: 3 problems; nothing was started",
        ]
        assert "listening" not in done.stdout and "secret-auth-token" not in done.stdout + done.stderr


def test_check_passes_a_good_file_and_notes_names_only_functions_read(tmp_path):
    env = tmp_path / "good.env"
    env.write_text(good_settings(tmp_path) + "MY_GREETING=hi\n")
    done = run_py("--env", str(env), "--check")
    assert done.returncode == 0, done.stderr
    assert "complete and valid" in done.stdout
    assert f"token store: JSON file {tmp_path / 'store' / 'tokens.json'}" in done.stdout
    assert "MY_GREETING is not a sfdcflex setting; functions see it as context.MY_GREETING" in done.stdout
    assert not (tmp_path / "store").exists()   # --check creates nothing


def test_check_looks_at_the_token_store_folder(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    env = tmp_path / "store.env"
    env.write_text(good_settings(tmp_path).replace(str(tmp_path / "store"), str(blocker)))
    done = run_py("--env", str(env), "--check")
    assert done.returncode == 2
    assert f"TOKEN_STORE_PATH: {blocker} is not a folder" in done.stderr
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "tokens.json").write_text("{damaged")
    env.write_text(good_settings(tmp_path))
    done = run_py("--env", str(env), "--check")
    assert done.returncode == 2 and "is not valid JSON" in done.stderr


def test_check_reports_settings_and_functions_problems_together(tmp_path):
    env = tmp_path / "one-mistake.env"
    env.write_text(good_settings(tmp_path).replace("SFDC_ORG_ID=00D5e000000AbCd\n", ""))
    done = run_py("--env", str(env), "--check", "--functions", str(tmp_path / "no-functions"))
    assert done.returncode == 2
    assert "SFDC_ORG_ID is required" in done.stderr
    assert f"functions: folder {tmp_path / 'no-functions'} does not exist" in done.stderr


def test_an_env_file_that_does_not_exist_is_an_error_naming_it(tmp_path):
    missing = tmp_path / "typo.env"
    for args in (["--check"], ["--port", "0"]):
        done = run_py("--env", str(missing), *args)
        assert done.returncode == 2
        assert done.stderr.strip() == f"sfdcflex: config: env file {missing} does not exist"


def test_sigterm_stops_the_demo_and_removes_its_folder():
    import json
    server = RunningServer("--demo", "--port", "0", "--log-format", "json")
    try:
        url = server.wait_for(r"Agent panel: (http://127\.0\.0\.1:\d+)/").group(1)
        folder = Path(server.wait_for(r"Token store: JSON file (\S+)/tokens\.json").group(1))
        server.wait_for(r"built-in\s+\S+/healthz")
        assert folder.is_dir() and folder.name.startswith("sfdcflex-demo-")
        assert call(url, "GET", "/demo-config.json").status == 200
        logged = json.loads(server.wait_for(r'"200 GET /demo-config.json').string)
        assert logged["level"] == "INFO"
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(10) == 0
    finally:
        server.stop()
    assert "sfdcflex: stopped" in "".join(server.output)
    assert not folder.exists()


def test_print_env_prints_a_complete_env(tmp_path):
    from sfdcflex.config import load_config
    from sfdcflex.runtime.envfile import parse_env
    demo = RunningServer("--demo", "--port", "0", "--demo-dir", str(tmp_path), "--print-env")
    try:
        demo.wait_for(r"^# sfdcflex rehearsal")
        start = len(demo.output) - 1
        demo.wait_for(r"^\s*$")   # the block ends with an empty line
        block = "".join(demo.output[start:])
    finally:
        demo.stop()
    settings = parse_env(block)
    assert "PUBLIC_URL" not in settings   # the rehearsing server answers the OAuth callback itself
    config = load_config(settings)
    assert config.sfdc_instance_url.startswith("http://127.0.0.1:") and config.token_store == "json"
    assert config.twilio_iam_url.startswith("http://127.0.0.1:")
    assert config.token_store_path == tmp_path / "tokens.json"


@pytest.fixture
def linked_server(tmp_path):
    """run.py --env FILE against the stand-ins, with alice linked; yields (server, url, sf, token)."""
    from conftest import seed
    from reliability_support import settings_for, write_env_file
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


def _wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.mark.slow
def test_sigterm_during_a_2_second_upstream_call_still_answers_it_and_exits_0(linked_server):
    server, url, sf, token = linked_server
    idle = http.client.HTTPConnection(url.split("//")[1], timeout=5)
    idle.request("GET", "/healthz")
    assert idle.getresponse().read().startswith(b'{"status":"ok"')
    sf.fail_next("search", stall=2.0)
    searches = sf.calls["search"]
    thread, answers = _lookup_in_thread(url, token)
    assert _wait_until(lambda: sf.calls["search"] > searches, 5)   # stalled at Salesforce now
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
    assert _wait_until(lambda: sf.calls["search"] > searches, 5)
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
