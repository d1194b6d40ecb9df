"""A runtime served on a loopback port, for tests of the Functions runtime over HTTP."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

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

    @contextmanager
    def cap_filled(self, count: int) -> Iterator[None]:
        """`count` invocations of the fixture's /slow function in flight (the concurrency cap,
        when it is `count`), held until the block ends."""
        slow = self.app.functions["slow"].module
        slow.RELEASE.clear()
        busy = [threading.Thread(target=self.call, args=("POST", "/slow"), kwargs={"body": {"wait": 5}})
                for _ in range(count)]
        for thread in busy:
            thread.start()
        try:
            for _ in busy:
                assert slow.ENTERED.acquire(timeout=5)
            yield
        finally:
            slow.RELEASE.set()
            for thread in busy:
                thread.join(10)
