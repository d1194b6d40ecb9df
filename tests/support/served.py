"""A runtime served on a loopback port, for tests of the Functions runtime over HTTP."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sfdcflex.runtime.app import App
from sfdcflex.runtime.http.server import FunctionsServer

from .http import Answer, call

FIXTURE_FUNCTIONS = Path(__file__).resolve().parent.parent / "fixtures" / "functions"
AUTH_TOKEN = "12345"


@dataclass
class Served:
    url: str
    app: App
    server: FunctionsServer

    def call(self, method: str = "GET", path: str = "/", **kwargs) -> Answer:
        return call(self.url, method, path, **kwargs)
