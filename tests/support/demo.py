"""The demo as `python run.py --demo` wires it, in this process: stand-ins, the link trace (its
printed lines kept in `printed`), metrics with the trace as tap, the app and its server."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sfdcflex.assembly import build_app
from sfdcflex.config import load_config
from sfdcflex.demo.main import Demo
from sfdcflex.metrics import Metrics
from sfdcflex.runtime.http.limits import ServerLimits
from sfdcflex.runtime.http.server import FunctionsServer, start_in_thread
from sfdcflex.runtime.http.sockets import listen, url_of

from .http import call


class RunningDemo:
    def __init__(self, demo: Demo, url: str, app, printed: list[str]) -> None:
        self.demo, self.url, self.app, self.printed = demo, url, app, printed

    def token(self, who: str) -> str:
        return self.demo.iam.issue_token(who)

    def start_link(self, who: str) -> str:
        """The panel's POST /auth for `who`: Salesforce's authorize URL."""
        answer = call(self.url, "POST", "/auth", body={"Token": self.token(who), "origin": self.url})
        assert answer.status == 200, answer.body
        return answer.json()["authorize_url"]

    def link(self, who: str, sfdc_username: str, allow: bool = True):
        """The whole browser flow: /auth, Salesforce's page, the redirect back (its answer)."""
        from sfdcflex.demo.standins.salesforce import submit_consent
        location = submit_consent(self.start_link(who), sfdc_username, allow=allow)
        return call(self.url, "GET", location[len(self.url):]), location

    def trace(self) -> dict:
        answer = call(self.url, "GET", "/demo/link-trace")
        assert answer.status == 200
        return answer.json()


@contextmanager
def demo_in_process(folder: Path) -> Iterator[RunningDemo]:
    sock = listen(("127.0.0.1", 0))
    url = url_of(sock)
    printed: list[str] = []
    demo = Demo.start(folder=folder, server_url=url, trace=printed.append)
    metrics = Metrics(tap=demo.trace)
    app = build_app(load_config(demo.settings), url, assets=demo.assets(), metrics=metrics,
                    builtins=demo.builtins())
    server = FunctionsServer(sock, app, ServerLimits())
    metrics.watch_server(server)
    start_in_thread(server)
    try:
        yield RunningDemo(demo, url, app, printed)
    finally:
        server.shutdown()
        server.server_close()
        app.close()
        demo.stop()
