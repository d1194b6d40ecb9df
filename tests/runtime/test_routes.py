"""Start-up checks on the functions folder: each problem stops start-up with one line naming the file."""
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
