"""Assets are files: every file under the assets folder is served by its path, as on Twilio.

`assets/logo.png` answers `/logo.png`; `name.protected.ext` answers `/name.ext` to a request with
a valid X-Twilio-Signature only; `name.private.ext` is never served by URL (403, as twilio-run
answers) but a function reads it through `context.get_assets()` (Twilio's Runtime.getAssets(),
which gives the private assets alone, each with its `path` and `open()`). Visibility works as for
functions: https://www.twilio.com/docs/serverless/functions-assets/visibility
"""
from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass, field
from pathlib import Path

PUBLIC, PROTECTED, PRIVATE = "public", "protected", "private"
# The types Twilio's dev server (the `send` package, mime 1.x) gives where Python's table differs.
_TYPES = {".js": "application/javascript", ".mjs": "application/javascript", ".json": "application/json"}
_TEXTUAL = re.compile(r"^(text/|application/(javascript|json))")


@dataclass(frozen=True)
class Asset:
    """One asset: its Content-Type, its bytes, who may fetch it by URL, and its file."""

    content_type: str
    body: bytes = field(repr=False)
    access: str = PUBLIC
    file: Path | None = None


@dataclass(frozen=True)
class PrivateAsset:
    """A private asset as `context.get_assets()` gives it: `path` on disk and `open()` for its text."""

    path: str

    def open(self) -> str:
        return Path(self.path).read_text(encoding="utf-8")


def content_type(name: str) -> str:
    """The Content-Type a file is served with, by its extension; text is UTF-8."""
    suffix = Path(name).suffix.lower()
    kind = _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return f"{kind}; charset=UTF-8" if _TEXTUAL.match(kind) else kind


def path_and_access(relative: Path) -> tuple[str, str]:
    """The URL path and visibility of a file: `a/b.protected.txt` is ("/a/b.txt", protected)."""
    suffix = relative.suffix
    stem = relative.name[: len(relative.name) - len(suffix)] if suffix else relative.name
    access = PUBLIC
    for marker in (PROTECTED, PRIVATE):
        if stem.endswith("." + marker):
            stem, access = stem[: -len(marker) - 1], marker
            break
    parent = relative.parent.as_posix()
    path = "/" + ("" if parent == "." else parent + "/") + stem + suffix
    return re.sub(r"\s", "-", path), access   # twilio-run turns blanks into hyphens


def load_assets(folder: Path | None) -> dict[str, Asset]:
    """Every file under `folder` by URL path (hidden files and `_`-names left out); `/` serves
    a public `/index.html`. Start-up reads them once: assets are small, and served often."""
    if folder is None:
        return {}
    folder = Path(folder)
    assets: dict[str, Asset] = {}
    for file in sorted(folder.rglob("*")):
        relative = file.relative_to(folder)
        if not file.is_file() or any(part.startswith((".", "_")) for part in relative.parts):
            continue
        path, access = path_and_access(relative)
        assets[path] = Asset(content_type(file.name), file.read_bytes(), access, file)
    index = assets.get("/index.html")
    if index is not None and index.access == PUBLIC:
        assets["/"] = index
    return assets


def private_assets(assets: dict[str, Asset]) -> dict[str, PrivateAsset]:
    """What `context.get_assets()` gives: the private assets, by URL path."""
    return {path: PrivateAsset(str(asset.file)) for path, asset in assets.items()
            if asset.access == PRIVATE and asset.file is not None}
