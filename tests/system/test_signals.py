"""Signals to run.py as a process: SIGTERM lets an answer under way finish within the drain time,
closes idle connections at once and exits 0; a second signal stops it at once."""
from __future__ import annotations

import http.client
import os
import re
import signal
import sys
import threading
import time

import pytest

from tests.support.http import call
from tests.support.processes import PROJECT, Started, settings_for, wait_until, write_env_file


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
    server = Started([sys.executable, "run.py", "--env", str(env), "--port", "0", "--timeout", "5"],
                     cwd=PROJECT, env=dict(os.environ))
    try:
        url = server.wait_for(r"sfdcflex listening on (\S+)").group(1)
        token = iam.issue_token("alice@example.com")
        start = call(url, "POST", "/auth", body={"Token": token, "origin": url})
        from sfdcflex.demo.standins.salesforce import submit_consent
        location = submit_consent(start.json()["authorize_url"], "alice@example.com")
        assert call(url, "GET", location[len(url):]).status == 200
        yield server, url, sf, token
    finally:
        server.stop(signal.SIGINT)
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
