"""Assets as Twilio serves them: by path, typed by extension, public, protected (signed requests
only) or private (never by URL; functions read them through context.get_assets())."""
from __future__ import annotations

from pathlib import Path

import pytest

from sfdcflex.runtime.app import App
from sfdcflex.runtime.assets import PRIVATE, PROTECTED, PUBLIC, load_assets, path_and_access
from sfdcflex.runtime.errors import ConfigError
from sfdcflex.runtime.routes import build_routes, discover_functions
from sfdcflex.runtime.signature import compute_signature
from tests.support.served import AUTH_TOKEN

FILES = {".env": b"AUTH_TOKEN=x", "_draft.html": b"<p>draft", "index.html": b"<h1>panel</h1>",
         "config.json": b'{"a": 1}', "blob.bin": b"\x00\x01", "noext.zzz": b"?", "sub/page.css": b"p{}",
         "app.js": b"1", "words.protected.txt": b"signed only", "keys.private.json": b'{"key": "k"}'}


@pytest.fixture
def asset_folder(tmp_path: Path) -> Path:
    for name, body in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(body)
    return tmp_path


@pytest.mark.parametrize("relative,expected", [
    ("logo.png", ("/logo.png", PUBLIC)), ("a/b.protected.txt", ("/a/b.txt", PROTECTED)),
    ("keys.private.json", ("/keys.json", PRIVATE)), ("my notes.txt", ("/my-notes.txt", PUBLIC)),
    ("README", ("/README", PUBLIC)), ("x.protected", ("/x.protected", PUBLIC)),
])
def test_an_assets_path_drops_its_visibility_and_blanks_become_hyphens(relative, expected):
    assert path_and_access(Path(relative)) == expected


def test_public_assets_are_served_by_path_typed_by_extension_hidden_files_never(dispatcher, asset_folder):
    local = dispatcher(assets=load_assets(asset_folder))
    for hidden in ("/.env", "/_draft.html", "/keys.private.json", "/words.protected.txt"):
        assert local.call("GET", hidden).status == 404, hidden
    expected = {"/index.html": "text/html; charset=UTF-8", "/": "text/html; charset=UTF-8",
                "/config.json": "application/json; charset=UTF-8", "/app.js": "application/javascript; charset=UTF-8",
                "/blob.bin": "application/octet-stream", "/noext.zzz": "application/octet-stream",
                "/sub/page.css": "text/css; charset=UTF-8"}
    for path, kind in expected.items():
        answer = local.call("GET", path)
        assert answer.status == 200 and answer.headers["Content-Type"] == kind, path
        assert answer.body == FILES[path.lstrip("/") or "index.html"]
    assert local.call("HEAD", "/config.json").status == 200
    assert local.call("OPTIONS", "/config.json").status == 204


def test_a_protected_asset_is_served_to_a_validly_signed_request_only(dispatcher, asset_folder):
    local = dispatcher(assets=load_assets(asset_folder))
    unsigned = local.call("GET", "/words.txt")
    forged = local.call("GET", "/words.txt", headers={"X-Twilio-Signature": "bm90IGl0"})
    signed = local.call("GET", "/words.txt", headers={
        "X-Twilio-Signature": compute_signature(AUTH_TOKEN, local.url + "/words.txt")})
    assert (unsigned.status, forged.status) == (403, 403) and unsigned.json()["error"] == "invalid_signature"
    assert (signed.status, signed.body) == (200, b"signed only")


def test_a_private_asset_is_never_served_but_a_function_reads_it(dispatcher, asset_folder, tmp_path_factory):
    functions = tmp_path_factory.mktemp("functions")
    (functions / "reads.py").write_text(
        "def handler(context, event, callback):\n"
        "    assets = context.get_assets()\n"
        "    callback(None, {'paths': sorted(assets), 'text': assets['/keys.json'].open()})\n")
    local = dispatcher(functions, assets=load_assets(asset_folder))
    by_url = local.call("GET", "/keys.json")
    assert by_url.status == 403 and by_url.json()["error"] == "private_asset"
    assert local.call("GET", "/reads").json() == {"paths": ["/keys.json"], "text": '{"key": "k"}'}


def test_a_function_and_an_asset_on_one_path_stop_start_up(asset_folder, tmp_path_factory):
    functions = tmp_path_factory.mktemp("functions")
    (functions / "config.json.py").write_text("def handler(context, event, callback):\n    callback(None, 1)\n")
    found = discover_functions(functions)
    with pytest.raises(ConfigError, match="a function and an asset both answer /config.json"):
        App(build_routes(found), found, assets=load_assets(asset_folder))


def test_root_serves_only_a_public_index(tmp_path):
    (tmp_path / "index.protected.html").write_text("<p>signed")
    assert "/" not in load_assets(tmp_path)
