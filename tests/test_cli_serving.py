"""run.py serving until it is stopped, in this process: the routes banner, the demo (with the JSON
and the Sync store), Ctrl-C and SIGTERM, --print-env, and PUBLIC_URL for the OAuth callback.

cli.main runs on this, the main, thread (`run_main`, tests/conftest.py), where signal handlers run;
signals to a real run.py process: tests/system/test_signals.py.
"""
from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from sfdcflex import cli
from sfdcflex.runtime.http.server import FunctionsServer
from tests.support.http import call
from tests.support.processes import settings_for, write_env_file


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


def test_run_py_serves_a_functions_folder_and_its_assets_as_twilio_run_does(crm, tmp_path, monkeypatch, run_main):
    """`python run.py --functions DIR` serves DIR's functions and the assets/ folder beside it, and
    answers the differential corpus as twilio-run 5 did, but for the table's differences: what
    `python -m sfdcflex.runtime.differential --against URL` checks (tests/runtime/test_differential.py
    says why)."""
    from sfdcflex.runtime.differential.__main__ import SECRET, main as differential
    from sfdcflex.runtime.differential.differences import FLEX, PROJECT, load_recording
    settings = settings_for(crm.sf, crm.iam, crm.sync, tmp_path / "store" / "tokens.json")
    env = write_env_file(tmp_path / "project.env", {**settings, "GREETING": "hi", "AUTH_TOKEN": SECRET,
                                                    "FLEX_INSTANCE_URL": FLEX})
    argv = ["--env", str(env), "--port", "0", "--functions", str(PROJECT / "functions")]
    code, out, err, compared = serve_here(monkeypatch, run_main, argv, lambda url: differential(["--against", url]))
    assert (code, compared) == (0, 0), out
    assert f"{len(load_recording())} requests; 0 difference(s) the table does not allow" in out
    assert "takes the path of the built-in check at /healthz" in err   # the function named healthz wins


def test_an_assets_folder_that_is_not_there_stops_start_up(crm, tmp_path, run_main):
    settings = settings_for(crm.sf, crm.iam, crm.sync, tmp_path / "store" / "tokens.json")
    env = write_env_file(tmp_path / "sfdcflex.env", settings)
    code, out, err = run_main("--env", str(env), "--port", "0", "--assets", str(tmp_path / "nope"))
    assert code == 2 and f"assets: folder {tmp_path / 'nope'} does not exist" in err


def test_demo_trace_prints_each_step_of_a_link_as_it_happens(tmp_path, monkeypatch, run_main):
    """`run.py --demo --trace`: the link's exchanges in the terminal, its values cut to prefixes."""
    from sfdcflex.demo.standins.salesforce import submit_consent

    def exercise(url: str) -> str:
        token = demo_token(url, "bob@sfdcflex.demo")
        start = call(url, "POST", "/auth", body={"Token": token}).json()
        location = submit_consent(start["authorize_url"], "bob@sfdcflex.demo")
        assert call(url, "GET", location[len(url):]).status == 200
        return (tmp_path / "tokens.json").read_text()

    code, out, err, tokens = serve_here(monkeypatch, run_main, ["--demo", "--trace", "--port", "0",
                                                                "--demo-dir", str(tmp_path)], exercise)
    assert code == 0
    steps = [line for line in out.splitlines() if line.startswith("[link] ") and "→" in line]
    assert [re.search(r"\] \S+  (.+?)  ", line).group(1) for line in steps] == [
        "panel → sfdcflex", "popup → Salesforce authorize", "popup → Salesforce consent",
        "sfdcflex → Salesforce token endpoint", "sfdcflex → Salesforce userinfo",
        "sfdcflex → token store (JSON file)", "popup → sfdcflex"]   # as each completed
    assert "[link] finished: bob@sfdcflex.demo is linked" in out
    stored = __import__("json").loads(tokens)["agents"]["bob@sfdcflex.demo"]
    assert stored["access_token"] not in out and stored["refresh_token"] not in out
    assert "client_secret=(not shown)" in out
