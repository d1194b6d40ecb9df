"""The runtime answers as twilio-run 5.0.1 (with @twilio/runtime-handler 2.1.0) answered the same
requests, but for the deliberate differences in the one table README shows.

The answers were recorded with `python -m sfdcflex.runtime.differential --record` (Node and npm);
this replays them without Node, over real sockets, against the runtime serving the same project
(tests/fixtures/differential/project: each function in JavaScript and in Python, and assets) as
`python run.py --functions DIR` serves it.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from sfdcflex.runtime.app import App
from sfdcflex.runtime.assets import load_assets
from sfdcflex.runtime.differential.corpus import corpus
from sfdcflex.runtime.differential.differences import (FLEX, PROJECT, TABLE, load_recording, markdown_table,
                                                       replay)
from sfdcflex.runtime.differential.__main__ import SECRET
from sfdcflex.runtime.http.limits import ServerLimits
from sfdcflex.runtime.http.server import FunctionsServer, start_in_thread
from sfdcflex.runtime.http.sockets import listen, url_of
from sfdcflex.runtime.response import Reply
from sfdcflex.runtime.routes import build_routes, discover_functions

RUNTIME_README = Path(__file__).resolve().parents[2] / "sfdcflex" / "runtime" / "README.md"


@pytest.fixture(scope="module")
def replayed():
    """Every recorded request sent again to the runtime, built as run.py builds it: the project's
    .env, PUBLIC_URL the address served, CORS for one Flex origin, a built-in /healthz."""
    sock = listen(("127.0.0.1", 0))
    functions = discover_functions(PROJECT / "functions")
    env = {"GREETING": "hi", "ACCOUNT_SID": "AC" + "a" * 32, "AUTH_TOKEN": SECRET}
    app = App(build_routes(functions), functions, env=env, public_url=url_of(sock), cors_origins=(FLEX,),
              assets=load_assets(PROJECT / "assets"), builtins={"/healthz": lambda request: Reply(200)})
    server = FunctionsServer(sock, app, ServerLimits())
    start_in_thread(server)
    try:
        yield replay(load_recording(), sock.getsockname()[:2], SECRET)
    finally:
        server.shutdown()
        server.server_close()
        app.close()


def test_every_answer_is_twilio_runs_but_for_the_declared_differences(replayed):
    assert [line for one in replayed for line in one.differences()] == []


def test_every_difference_the_table_patches_is_shown_by_some_request(replayed):
    """No row of the table may outlive the difference it declares."""
    shown = {row for one in replayed for row in one.rows}
    assert {row.what for row in TABLE if row.patch is not None} - shown == set()


def test_the_corpus_is_what_was_recorded_and_holds_at_least_250_requests():
    """Changing a request means recording again: the answers must be to these very requests."""
    recorded = [entry["request"] for entry in load_recording()]
    assert recorded == [case.to_json() for case in corpus()]
    assert len(recorded) >= 250


def test_the_runtime_readme_shows_the_table_of_differences_itself():
    text = RUNTIME_README.read_text()
    assert markdown_table() in text
    tables = re.findall(r"^\| what \| sfdcflex \| twilio-run", text, flags=re.MULTILINE)
    assert len(tables) == 1   # one table of differences, not a second one drifting apart


def test_each_function_of_the_project_is_written_in_both_languages():
    folder = PROJECT / "functions"
    javascript = {path.relative_to(folder).with_suffix("") for path in folder.rglob("*.js")}
    python = {path.relative_to(folder).with_suffix("") for path in folder.rglob("*.py")}
    assert javascript == python and len(python) >= 7
