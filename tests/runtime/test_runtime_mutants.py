"""Runtime behaviour that mutation testing found unchecked (mutmut 3.8, issue 18): CORS, routes.

Each test names the surviving mutants it kills; the equivalent ones are listed in README's
reliability report.
"""
from __future__ import annotations

import pytest

from tests.support.crm import FLEX_URL
from tests.support.http import call
from sfdcflex.runtime.errors import ConfigError
from sfdcflex.runtime.routes import discover_functions, load_assets


def test_a_granted_origin_may_read_server_timing(crm):
    """CorsPolicy.headers mutant 36 (another header exposed): Flex's panel reads Server-Timing."""
    answer = call(crm.url, "POST", "/get-user", body={"Token": "not-a-token"}, headers={"Origin": FLEX_URL})
    assert answer.headers["Access-Control-Allow-Origin"] == FLEX_URL
    assert answer.headers["Access-Control-Expose-Headers"] == "Server-Timing"
    assert "Server-Timing" in answer.headers
    refused = call(crm.url, "POST", "/get-user", body={"Token": "x"}, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Expose-Headers" not in refused.headers


def test_assets_are_served_with_their_type_and_hidden_files_are_not(serve, tmp_path):
    """load_assets mutants 16, 17 (hidden prefixes), 22, 23, 28 (types and charsets), 31, 32
    (JSON's charset), 41 (the body)."""
    files = {".env": b"AUTH_TOKEN=x", "_draft.html": b"<p>draft", "keys.private.json": b"{}",
             "index.html": b"<h1>panel</h1>", "config.json": b'{"a": 1}', "blob.bin": b"\x00\x01",
             "noext.zzz": b"?", "sub/page.css": b"p{}"}
    for name, body in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(body)
    served = serve(assets=load_assets(tmp_path))
    for hidden in ("/.env", "/_draft.html", "/keys.private.json"):
        assert served.call("GET", hidden).status == 404, hidden
    expected = {"/index.html": "text/html; charset=utf-8", "/": "text/html; charset=utf-8",
                "/config.json": "application/json; charset=utf-8",
                "/blob.bin": "application/octet-stream", "/noext.zzz": "application/octet-stream",
                "/sub/page.css": "text/css; charset=utf-8"}
    for path, kind in expected.items():
        answer = served.call("GET", path)
        assert answer.status == 200 and answer.headers["Content-Type"] == kind, path
        assert answer.body == files[path.lstrip("/") or "index.html"]


def test_discovery_skips_hidden_files_names_functions_and_reports_load_errors(tmp_path):
    """discover_functions 15 (dot-files served), 44 (the name lost); load_module 27 (the error's
    type missing from the start-up message)."""
    handler = "def handler(context, event, callback):\n    callback(None, {})\n"
    (tmp_path / "hello.py").write_text(handler)
    (tmp_path / ".hidden.py").write_text(handler)
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "old.py").write_text(handler)
    functions = discover_functions(tmp_path)
    assert set(functions) == {"hello"} and functions["hello"].name == "hello"
    (tmp_path / "broken.py").write_text("def handler(:\n")
    with pytest.raises(ConfigError) as raised:
        discover_functions(tmp_path)
    assert "broken.py failed to load: SyntaxError:" in str(raised.value)
