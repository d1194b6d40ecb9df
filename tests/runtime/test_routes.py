"""Routes are files: what the functions folder answers, and start-up checks on it (each problem
stops start-up with one line naming the file). Requests go through App.dispatch in process."""
from __future__ import annotations

import pytest

from sfdcflex.runtime.errors import ConfigError
from sfdcflex.runtime.routes import PRIVATE, PROTECTED, PUBLIC, build_routes, discover_functions

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
    assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
    assert answer.json() == {"error": "not_found", "message": "no function or asset at /nope"}


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
