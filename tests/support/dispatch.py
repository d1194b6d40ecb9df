"""The Functions runtime called in process: `App.dispatch(Request(...))`, no socket.

`Local` has the interface of tests.support.served.Served (`url`, `app`, `call`), so a test of
the runtime's semantics reads the same whichever way it reaches the app; only tests of what
the HTTP server decides (the wire's framing, HEAD, refusals while reading) need a real server.
"""
from __future__ import annotations

import http.client
import json
import threading
from pathlib import Path

from sfdcflex.runtime.app import App, Limits, Request
from sfdcflex.runtime.response import Reply
from sfdcflex.runtime.routes import build_routes, discover_functions

from .http import Answer
from .served import AUTH_TOKEN, FIXTURE_FUNCTIONS

HOST = "functions.test"


def build_app(folder: Path = FIXTURE_FUNCTIONS, **options) -> App:
    """An App over the functions in `folder`, with the options tests/conftest.py's `serve` takes."""
    functions = discover_functions(folder)
    options.setdefault("env", {"AUTH_TOKEN": AUTH_TOKEN, "GREETING": "hi"})
    options.setdefault("limits", Limits())
    return App(build_routes(functions, options.pop("aliases", None)), functions, **options)


class Local:
    """Calls an App as the HTTP server does: dispatch on a thread of its own, and the first
    reply wins, the function's or the watchdog's early 504 at the time limit."""

    def __init__(self, app: App, host: str = HOST) -> None:
        self.app = app
        self.url = f"http://{host}"
        self._host = host
        self._threads: list[threading.Thread] = []

    def call(self, method: str = "GET", path: str = "/", *, body: object = None,
             headers: dict[str, str] | None = None, timeout: float = 10.0) -> Answer:
        """One request; a dict body is sent as JSON, as tests.support.http.call sends it."""
        reply = self.dispatch(self.request(method, path, body=body, headers=headers), timeout)
        message = http.client.HTTPMessage()
        for name, value in reply.headers:
            message[name] = value  # appends: a repeated header stays repeated
        return Answer(reply.status, message, reply.body)

    def request(self, method: str, path: str, *, body: object = None,
                headers: dict[str, str] | None = None) -> Request:
        """The Request the HTTP server would build for what http.client sends: a Host header,
        Content-Length with a body, values without surrounding blanks."""
        headers = {"Host": self._host, **(headers or {})}
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        body = body or b""
        if body or method == "POST":
            headers.setdefault("Content-Length", str(len(body)))
        pairs = tuple((name, str(value).strip(" \t")) for name, value in headers.items())
        return Request(method, path, pairs, body, "127.0.0.1")

    def dispatch(self, request: Request, timeout: float = 10.0) -> Reply:
        """The first reply to `request`; the dispatch goes on past it if the function does."""
        first: list[Reply] = []
        answered, lock = threading.Event(), threading.Lock()

        def answer(reply: Reply) -> None:
            with lock:
                if not first:
                    first.append(reply)
                    answered.set()

        thread = threading.Thread(target=lambda: answer(self.app.dispatch(request, answer)),
                                  name="dispatch", daemon=True)
        self._threads.append(thread)
        thread.start()
        if not answered.wait(timeout):
            raise TimeoutError(f"no reply to {request.method} {request.target} within {timeout} s")
        return first[0]

    def join(self, timeout: float = 5.0) -> bool:
        """Wait until every dispatch has ended, its request line logged; False if one has not."""
        for thread in self._threads:
            thread.join(timeout)
        running = [thread for thread in self._threads if thread.is_alive()]
        self._threads = running
        return not running
