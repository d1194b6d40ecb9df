"""The runtime's front door: the example in sfdcflex/runtime/__init__.py runs as it is written."""
from __future__ import annotations

import json
import textwrap

import sfdcflex.runtime
from sfdcflex.runtime.app import App, Request
from sfdcflex.runtime.routes import build_routes, discover_functions


def example_code() -> str:
    """The indented block of the package's docstring: what a function author copies first."""
    doc = sfdcflex.runtime.__doc__
    block = doc.split("\n\n")[1]
    assert block.startswith("    from sfdcflex.runtime import Response")
    return textwrap.dedent(doc[doc.index(block):doc.index("\n\nThe rest")])


def test_the_front_door_example_answers_through_the_runtime(tmp_path):
    (tmp_path / "example.py").write_text(example_code())
    found = discover_functions(tmp_path)
    app = App(build_routes(found), found)
    try:
        early: list = []
        reply = app.dispatch(Request("POST", "/example", [("Host", "localhost"),
                                                          ("Content-Type", "application/json")],
                                     b'{"name": "Ada"}'), early.append)
    finally:
        app.close()
    assert early == []
    assert reply.status == 201 and reply.header("Cache-Control") == "no-store"
    assert json.loads(reply.body) == {"greeting": "hello Ada"}
