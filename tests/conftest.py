"""Shared fixtures: a runtime served on a loopback port and a small HTTP client for it."""
from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from sfdcflex.routes import build_routes, discover_functions
from sfdcflex.runtime import App, Limits
from sfdcflex.serving import FunctionsServer, start_in_thread

FIXTURE_FUNCTIONS = Path(__file__).parent / "fixtures" / "functions"
AUTH_TOKEN = "12345"


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self):
        return json.loads(self.body)


def call(url: str, method: str = "GET", path: str = "/", *, body: object = None,
         headers: dict[str, str] | None = None, timeout: float = 10.0) -> Answer:
    """One request on a new connection; a dict body is sent as JSON."""
    host = url.split("//", 1)[1]
    conn = http.client.HTTPConnection(host, timeout=timeout)
    headers = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=body, headers=headers)
        reply = conn.getresponse()
        return Answer(reply.status, reply.headers, reply.read())
    finally:
        conn.close()


@dataclass
class Served:
    url: str
    app: App
    server: FunctionsServer

    def call(self, method: str = "GET", path: str = "/", **kwargs) -> Answer:
        return call(self.url, method, path, **kwargs)


@pytest.fixture
def serve():
    """serve(folder=..., **App options) → Served; every server is stopped after the test."""
    started: list[Served] = []

    def start(folder: Path = FIXTURE_FUNCTIONS, *, read_timeout: float = 10.0, **options) -> Served:
        functions = discover_functions(folder)
        options.setdefault("env", {"AUTH_TOKEN": AUTH_TOKEN, "GREETING": "hi"})
        options.setdefault("limits", Limits())
        app = App(build_routes(functions, options.pop("aliases", None)), functions, **options)
        server = FunctionsServer(("127.0.0.1", 0), app, read_timeout=read_timeout)
        start_in_thread(server)
        served = Served(server.url, app, server)
        started.append(served)
        return served

    yield start
    for served in started:
        served.server.shutdown()
        served.server.server_close()
        served.app.close()


@pytest.fixture
def runtime(serve) -> Served:
    return serve()
