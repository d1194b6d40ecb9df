"""Routes are files: what the functions folder answers, and start-up checks on it (each problem
stops start-up with one line naming the file). Requests go through App.dispatch in process."""
from __future__ import annotations

import pytest

from sfdcflex.runtime.errors import ConfigError
from sfdcflex.runtime.routes import PRIVATE, PROTECTED, PUBLIC, build_routes, discover_functions, load_assets

GOOD = "def handler(context, event, callback):\n    callback(None, 'ok')\n"


def test_discovers_access_levels_and_nested_names(tmp_path):
    (tmp_path / "a-b.py").write_text(GOOD)
    (tmp_path / "hook.protected.py").write_text(GOOD)
    (tmp_path / "lib.private.py").write_text("VALUE = 1\n")
    (tmp_path / "sms").mkdir()
    (tmp_path / "sms" / "reply.py").write_text(GOOD)
    (tmp_path / "__init__.py").write_text("")
    found = discover_functions(tmp_path)
    assert {name: fn.access for name, fn in found.items()} == {
        "a-b": PUBLIC, "hook": PROTECTED, "lib": PRIVATE, "sms/reply": PUBLIC}
    assert set(build_routes(found)) == {"/a-b", "/hook", "/sms/reply"}


@pytest.mark.parametrize("files,named", [
    ({"nohandler.py": "x = 1\n"}, "nohandler.py"),
    ({"clash.py": GOOD, "clash.protected.py": GOOD}, "clash"),
    ({"broken.py": "def handler(:\n"}, "broken.py"),
    ({"bad name.py": GOOD}, "bad name.py"),
])
def test_bad_folders_stop_start_up_naming_the_file(tmp_path, files, named):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as failure:
        discover_functions(tmp_path)
    message = str(failure.value)
    assert named in message and "\n" not in message


def test_missing_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        discover_functions(tmp_path / "nope")


def test_assets_skip_private_files_and_serve_index_at_root(tmp_path):
    (tmp_path / "index.html").write_text("<p>hi</p>")
    (tmp_path / "app.js").write_text("1")
    (tmp_path / "keys.private.json").write_text("{}")
    assets = load_assets(tmp_path)
    assert set(assets) == {"/", "/index.html", "/app.js"}
    assert assets["/"].content_type == "text/html; charset=utf-8"


def test_discovery_skips_hidden_files_names_functions_and_reports_load_errors(tmp_path):
    """Dot-files and dot-folders are not functions, each function keeps its name, and a file
    that fails to load is named in the start-up message with the error's type."""
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


# --- requests to the routes -------------------------------------------------------------------

def test_unknown_path_is_json_404_that_names_it(local):
    answer = local.call("GET", "/nope")
    assert answer.status == 404
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json() == {"error": "not_found", "message": "no function at /nope"}


@pytest.mark.parametrize("path", ["/../conftest.py", "/sub/../hello", "/%2e%2e/conftest",
                                  "/shared.private", "/shared", "/shared.private.py",
                                  "//etc/passwd", "/hello.py", "/sub/./nested"])
def test_traversal_and_private_paths_never_reach_a_file(local, path):
    answer = local.call("GET", path)
    assert answer.status == 404
    assert b"Traceback" not in answer.body


def test_private_function_is_loadable_by_other_functions(local):
    answer = local.call("POST", "/uses-shared", body={"name": "ada"})
    assert answer.json() == {"said": "hello ada from a private function"}


def test_aliases_answer_like_their_target(dispatcher):
    local = dispatcher(aliases={"/hi": "/hello", "/ghost": "/does-not-exist"})
    assert local.call("GET", "/hi").json() == {"ok": True}
    assert local.call("GET", "/ghost").status == 404


def test_assets_are_served_with_their_type_and_hidden_files_are_not(dispatcher, tmp_path):
    """Hidden prefixes (".", "_", ".private") are never served; each type has its charset where
    it is text, JSON included; the body is the file's."""
    files = {".env": b"AUTH_TOKEN=x", "_draft.html": b"<p>draft", "keys.private.json": b"{}",
             "index.html": b"<h1>panel</h1>", "config.json": b'{"a": 1}', "blob.bin": b"\x00\x01",
             "noext.zzz": b"?", "sub/page.css": b"p{}"}
    for name, body in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(body)
    local = dispatcher(assets=load_assets(tmp_path))
    for hidden in ("/.env", "/_draft.html", "/keys.private.json"):
        assert local.call("GET", hidden).status == 404, hidden
    expected = {"/index.html": "text/html; charset=utf-8", "/": "text/html; charset=utf-8",
                "/config.json": "application/json; charset=utf-8",
                "/blob.bin": "application/octet-stream", "/noext.zzz": "application/octet-stream",
                "/sub/page.css": "text/css; charset=utf-8"}
    for path, kind in expected.items():
        answer = local.call("GET", path)
        assert answer.status == 200 and answer.headers["Content-Type"] == kind, path
        assert answer.body == files[path.lstrip("/") or "index.html"]
