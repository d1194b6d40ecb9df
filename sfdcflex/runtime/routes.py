"""Routes are files: every `*.py` under the functions folder is a function, as on Twilio.

`functions/get-contact.py` answers `/get-contact`, `functions/sms/reply.py` answers `/sms/reply`.
`name.protected.py` needs a valid X-Twilio-Signature; `name.private.py` is never reachable over
HTTP but other functions can load it (Twilio's `Runtime.getFunctions()`).
"""
from __future__ import annotations

import importlib.util
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TypeVar
from urllib.parse import urlsplit

from .assets import PRIVATE, PROTECTED, PUBLIC, Asset, load_assets
from .errors import ConfigError

# Visibility, Asset and load_assets live in assets.py (functions and assets share visibility);
# the demo and the app's assembly import them from here.
__all__ = ["PUBLIC", "PROTECTED", "PRIVATE", "Function", "Asset", "load_module", "discover_functions",
           "build_routes", "load_assets", "builtins_not_taken", "origin_form"]

log = logging.getLogger("sfdcflex")
B = TypeVar("B")   # a built-in route's handler: routes need not know its type
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.~-]*$")


@dataclass(frozen=True)
class Function:
    """One function file: its name ("sms/reply"), URL path, access level and loaded module."""

    name: str
    path: str
    file: Path
    access: str
    module: ModuleType = field(repr=False, compare=False)

    @property
    def handler(self):
        return getattr(self.module, "handler")


def _split_access(stem: str) -> tuple[str, str]:
    for access in (PROTECTED, PRIVATE):
        if stem.endswith("." + access):
            return stem[: -len(access) - 1], access
    return stem, PUBLIC


def load_module(file: Path) -> ModuleType:
    """Load a function file by its path: hyphenated names cannot be imported by name."""
    unique = "sfdcflex_fn_" + re.sub(r"\W", "_", str(file.resolve()))
    spec = importlib.util.spec_from_file_location(unique, file)
    if spec is None or spec.loader is None:
        raise ConfigError(f"functions: cannot load {file}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a syntax or import error in a user's function stops start-up
        raise ConfigError(f"functions: {file} failed to load: {type(exc).__name__}: {exc}") from exc
    return module


def discover_functions(folder: Path) -> dict[str, Function]:
    """Every function under `folder`, keyed by name; start-up stops on a bad or clashing file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"functions: folder {folder} does not exist")
    functions: dict[str, Function] = {}
    for file in sorted(folder.rglob("*.py")):
        relative = file.relative_to(folder)
        if any(part.startswith(("_", ".")) for part in relative.parts):
            continue  # __init__.py, __pycache__, editor droppings: not functions
        stem, access = _split_access(relative.with_suffix("").as_posix())
        if not all(_SEGMENT.match(part) for part in stem.split("/")):
            raise ConfigError(f"functions: {file} has a name that cannot be a URL path")
        if stem in functions:
            raise ConfigError(f"functions: {file} and {functions[stem].file} both answer /{stem}")
        module = load_module(file)
        if access != PRIVATE and not callable(getattr(module, "handler", None)):
            raise ConfigError(f"functions: {file} has no handler(context, event, callback)")
        functions[stem] = Function(stem, "/" + stem, file, access, module)
    return functions


def build_routes(functions: dict[str, Function],
                 aliases: dict[str, str] | None = None) -> dict[str, Function]:
    """URL path → function for everything reachable over HTTP, plus aliases whose target exists."""
    routes = {fn.path: fn for fn in functions.values() if fn.access != PRIVATE}
    for alias, target in (aliases or {}).items():
        if target in routes and alias not in routes:
            routes[alias] = routes[target]
    return routes


def builtins_not_taken(builtins: dict[str, B], routes: dict[str, Function]) -> dict[str, B]:
    """The built-in routes whose path no function takes: a function of that name wins."""
    for path in builtins.keys() & routes.keys():
        log.warning("the function %s takes the path of the built-in check at %s; "
                    "that check is not served", routes[path].file, path)
    return {path: builtin for path, builtin in builtins.items() if path not in routes}


def origin_form(target: str) -> str:
    """The request target as a path and query: an absolute-form target (RFC 9112 §3.2.2, which
    a server must accept) loses its scheme and authority, and a fragment, which a client
    should never send, is dropped, as Node's URL parser drops it."""
    target = target.split("#", 1)[0]
    if target[:1] == "/":
        return target
    parts = urlsplit(target)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
