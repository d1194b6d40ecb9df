"""run.py as a user runs it: start-up errors in one line, the demo, the routes banner, Ctrl-C."""
from __future__ import annotations

import http.client
import logging
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

from tests.support.http import call
from tests.support.processes import settings_for, wait_until, write_env_file
from sfdcflex import cli
from sfdcflex.cli import parse_args
from sfdcflex.runtime.http.server import FunctionsServer

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


# --- cli.main in this process: the same code as run.py, without a process start per test --------
# (run.py and `python -m sfdcflex` as processes, and signals to a real process, are tested as a
# user runs them: above, in tests/test_readme.py and in the slow signal tests below.)

@pytest.fixture
def run_main(monkeypatch, capsys):
    """cli.main(*argv) here: (exit code, stdout, stderr). The logging it sets up is undone after."""
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


def serve_here(monkeypatch, run_main, argv: list[str], exercise, stop_with=signal.SIGINT):
    """Run cli.main(argv) on this, the main, thread (where signal handlers run), `exercise(url)` on
    another once the server serves, then send this process `stop_with`, as Ctrl-C or systemd would.
    Returns (exit code, stdout, stderr, what exercise returned)."""
    made: list[FunctionsServer] = []

    class Recorded(FunctionsServer):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(cli, "FunctionsServer", Recorded)
    outcome: dict = {}

    def drive() -> None:
        deadline = time.monotonic() + 20
        # The server is made inside main's StopSignals block: from then on a signal is handled.
        while not made:
            if time.monotonic() > deadline:
                outcome["error"] = AssertionError("the server did not start")
                return
            time.sleep(0.01)
        try:
            while True:
                try:
                    call(made[0].url, "GET", "/healthz")
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
            outcome["value"] = exercise(made[0].url)
        except BaseException as exc:   # noqa: BLE001 - re-raised on the main thread
            outcome["error"] = exc
        finally:
            os.kill(os.getpid(), stop_with)

    driver = threading.Thread(target=drive, name="cli-test-driver", daemon=True)
    driver.start()
    code, out, err = run_main(*argv)
    driver.join(20)
    if "error" in outcome:
        raise outcome["error"]
    return code, out, err, outcome.get("value")


def demo_token(url: str, who: str) -> str:
    config = call(url, "GET", "/demo-config.json").json()
    return call(config["iam_url"], "POST", "/demo/token", body={"realm_user_id": who}).json()["token"]


def test_missing_setting_stops_start_up_with_one_line(tmp_path, run_main):
    env = tmp_path / ".env"
    env.write_text("# no org id\nACCOUNT_SID=AC" + "0" * 32 + "\nAUTH_TOKEN=secret-auth-token\n"
                   "SFDC_INSTANCE_URL=https://example.my.salesforce.com\nSFDC_CLIENT_ID=id\n"
                   "SFDC_CLIENT_SECRET=shh\nFLEX_INSTANCE_URL=https://flex.twilio.com\n")
    code, out, err = run_main("--env", str(env), "--port", "0")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "SFDC_ORG_ID" in lines[0]
    assert "secret-auth-token" not in err + out


def test_a_port_already_taken_is_one_line_and_exit_2(run_main):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = run_main("--demo", "--port", str(port))
    assert code == 2 and err.strip() == f"sfdcflex: cannot listen on 127.0.0.1:{port}: Address already in use"


def test_demo_starts_prints_routes_serves_and_stops_on_ctrl_c(tmp_path, monkeypatch, run_main):
    def exercise(url: str) -> None:
        panel = call(url, "GET", "/")
        assert panel.status == 200 and b"<html" in panel.body.lower()
        config = call(url, "GET", "/demo-config.json").json()
        assert {a["realm_user_id"] for a in config["agents"]} >= {"alice@sfdcflex.demo", "carol@sfdcflex.demo"}
        token = demo_token(url, "alice@sfdcflex.demo")
        assert call(url, "POST", "/get-user", body={"Token": token}).json()["error"] == "not_linked"

    code, out, err, _ = serve_here(monkeypatch, run_main, ["--demo", "--port", "0", "--demo-dir", str(tmp_path)],
                                   exercise)
    assert code == 0
    url = re.search(r"Agent panel: (http://127\.0\.0\.1:\d+)/", out).group(1)
    assert "DEMO MODE" in out and f"Token store: JSON file {tmp_path / 'tokens.json'}" in out
    assert re.search(r"public\s+\S+/get-contact-account-data\s+\(alias of /get-contact\)", out)
    assert re.search(r"built-in\s+\S+/healthz", out)
    assert re.search(r"404 POST /get-user \d+\.\dms", err)   # the request log, flushed at the stop
    assert "sfdcflex: stopped" in out and "Traceback" not in out + err
    assert tmp_path.is_dir()   # a folder it was given is left in place
    with pytest.raises(OSError):
        call(url, "GET", "/healthz")   # nothing listens any more


def test_demo_with_the_sync_store_links_through_sync(tmp_path, monkeypatch, run_main):
    from sfdcflex.demo.standins.salesforce import submit_consent

    def exercise(url: str) -> str:
        token = demo_token(url, "bob@sfdcflex.demo")
        start = call(url, "POST", "/auth", body={"Token": token}).json()
        location = submit_consent(start["authorize_url"], "bob@sfdcflex.demo")
        assert call(url, "GET", location[len(url):]).status == 200
        return call(url, "POST", "/get-user", body={"Token": token}).json()["sfdc_username"]

    code, out, err, user = serve_here(monkeypatch, run_main, ["--demo", "--store", "sync", "--port", "0",
                                                              "--demo-dir", str(tmp_path)], exercise)
    assert code == 0 and user == "bob@sfdcflex.demo"
    assert "Token store: Sync stand-in (http://127.0.0.1:" in out
    assert not (tmp_path / "tokens.json").exists()


def test_sigterm_stops_the_demo_and_removes_its_folder(monkeypatch, run_main):
    import json

    def exercise(url: str) -> None:
        assert call(url, "GET", "/demo-config.json").status == 200

    before = signal.getsignal(signal.SIGTERM)
    code, out, err, _ = serve_here(monkeypatch, run_main, ["--demo", "--port", "0", "--log-format", "json"],
                                   exercise, stop_with=signal.SIGTERM)
    assert code == 0 and "sfdcflex: stopped" in out
    folder = Path(re.search(r"Token store: JSON file (\S+)/tokens\.json", out).group(1))
    assert folder.name.startswith("sfdcflex-demo-") and not folder.exists()
    logged = [json.loads(line) for line in err.splitlines() if '"200 GET /demo-config.json' in line]
    assert len(logged) == 1 and logged[0]["level"] == "INFO"
    assert signal.getsignal(signal.SIGTERM) == before   # main put the handlers back


@pytest.mark.parametrize("destination", ["-", "file"])
def test_print_env_writes_a_complete_env(tmp_path, monkeypatch, run_main, destination):
    from sfdcflex.config import load_config
    from sfdcflex.runtime.envfile import parse_env, read_env_file
    target = tmp_path / "rehearse.env"
    if destination == "file":
        target.write_text("old")
        target.chmod(0o644)
    argv = ["--demo", "--port", "0", "--demo-dir", str(tmp_path), "--print-env",
            "-" if destination == "-" else str(target)]
    code, out, err, _ = serve_here(monkeypatch, run_main, argv, lambda url: None)
    assert code == 0
    if destination == "-":
        block = out[out.index("# sfdcflex rehearsal"):]
        settings = parse_env(block[:block.index("\n\n")])
    else:
        assert f"Rehearsal settings written to {target}: python run.py --env {target} --port 0" in out
        assert target.stat().st_mode & 0o777 == 0o600   # it holds the stand-ins' secrets
        settings = read_env_file(target)
    assert "PUBLIC_URL" not in settings   # the rehearsing server answers the OAuth callback itself
    config = load_config(settings)
    assert config.sfdc_instance_url.startswith("http://127.0.0.1:") and config.token_store == "json"
    assert config.twilio_iam_url.startswith("http://127.0.0.1:")
    assert config.token_store_path == tmp_path / "tokens.json"


def test_public_url_wins_over_the_address_served_for_the_oauth_callback(crm, tmp_path, monkeypatch, run_main):
    """Behind a proxy the callback Salesforce redirects to is PUBLIC_URL's, not this server's own."""
    import urllib.parse
    settings = settings_for(crm.sf, crm.iam, crm.sync, tmp_path / "store" / "tokens.json")
    env = write_env_file(tmp_path / "proxied.env", {**settings, "PUBLIC_URL": "https://crm.example.com"})

    def exercise(url: str) -> str:
        start = call(url, "POST", "/auth", body={"Token": crm.token("alice@example.com")}).json()
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(start["authorize_url"]).query))["redirect_uri"]

    code, out, err, redirect_uri = serve_here(monkeypatch, run_main, ["--env", str(env), "--port", "0"], exercise)
    assert code == 0 and redirect_uri == "https://crm.example.com/oauth-callback"
    assert "sfdcflex listening on http://127.0.0.1:" in out


def test_version(run_main, capsys):
    from sfdcflex import __version__
    with pytest.raises(SystemExit) as exited:
        run_main("--version")
    assert exited.value.code == 0 and capsys.readouterr().out.strip() == f"sfdcflex {__version__}"


# --- operating it: --check ---------------------------------------------------------------

def good_settings(tmp_path: Path) -> str:
    return ("ACCOUNT_SID=AC" + "0" * 32 + "\nAUTH_TOKEN=secret-auth-token\nSFDC_ORG_ID=00D5e000000AbCd\n"
            "SFDC_INSTANCE_URL=https://example.my.salesforce.com\nSFDC_CLIENT_ID=id\n"
            f"SFDC_CLIENT_SECRET=shh\nFLEX_INSTANCE_URL=https://flex.twilio.com\n"
            f"TOKEN_STORE_PATH={tmp_path / 'store' / 'tokens.json'}\n")


def test_check_prints_every_mistake_at_once_and_serves_nothing(tmp_path, run_main):
    env = tmp_path / "three-mistakes.env"
    env.write_text(good_settings(tmp_path)
                   .replace("ACCOUNT_SID=AC" + "0" * 32, "ACCOUNT_SID=ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
                   .replace("SFDC_CLIENT_ID=", "SFDC_CLEINT_ID=") + "CACHE_TTL=forever\n")
    for args in (["--check"], ["--port", "0"]):   # start-up runs the same validation
        code, out, err = run_main("--env", str(env), *args)
        assert code == 2, err
        lines = err.strip().splitlines()
        assert lines == [
            "sfdcflex: config: SFDC_CLEINT_ID is not a setting sfdcflex knows; did you mean SFDC_CLIENT_ID?",
            "sfdcflex: config: ACCOUNT_SID still holds the placeholder from .env.example; put your own value there",
            "sfdcflex: config: CACHE_TTL must be a number from 0 to 86400",
            "sfdcflex: 3 problems; nothing was started",
        ]
        assert "listening" not in out and "secret-auth-token" not in out + err


def test_check_passes_a_good_file_and_notes_names_only_functions_read(tmp_path, run_main):
    env = tmp_path / "good.env"
    env.write_text(good_settings(tmp_path) + "MY_GREETING=hi\n")
    code, out, err = run_main("--env", str(env), "--check")
    assert code == 0, err
    assert "complete and valid" in out
    assert f"token store: JSON file {tmp_path / 'store' / 'tokens.json'}" in out
    assert "MY_GREETING is not a sfdcflex setting; functions see it as context.MY_GREETING" in out
    assert not (tmp_path / "store").exists()   # --check creates nothing


def test_check_looks_at_the_token_store_folder(tmp_path, run_main, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    env = tmp_path / "store.env"
    env.write_text(good_settings(tmp_path).replace(str(tmp_path / "store"), str(blocker)))
    code, out, err = run_main("--env", str(env), "--check")
    assert code == 2
    assert f"TOKEN_STORE_PATH: {blocker} is not a folder" in err
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "tokens.json").write_text("{damaged")
    env.write_text(good_settings(tmp_path))
    code, out, err = run_main("--env", str(env), "--check")
    assert code == 2 and "TOKEN_STORE_PATH: The token store is damaged" in err
    assert "is not valid JSON" in caplog.text   # the path and the reason: in the log, on stderr


def test_check_reports_settings_and_functions_problems_together(tmp_path, run_main):
    env = tmp_path / "one-mistake.env"
    env.write_text(good_settings(tmp_path).replace("SFDC_ORG_ID=00D5e000000AbCd\n", ""))
    code, out, err = run_main("--env", str(env), "--check", "--functions", str(tmp_path / "no-functions"))
    assert code == 2
    assert "SFDC_ORG_ID is required" in err
    assert f"functions: folder {tmp_path / 'no-functions'} does not exist" in err


def test_an_env_file_that_does_not_exist_is_an_error_naming_it(tmp_path, run_main):
    missing = tmp_path / "typo.env"
    for args in (["--check"], ["--port", "0"]):
        code, out, err = run_main("--env", str(missing), *args)
        assert code == 2
        assert err.strip() == f"sfdcflex: config: env file {missing} does not exist"


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
