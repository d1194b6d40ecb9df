"""Shared fixtures: a runtime served on a loopback port and a small HTTP client for it."""
from __future__ import annotations

import http.client
import json
import signal
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from sfdcflex.clients.pool import Transport
from sfdcflex.runtime.routes import build_routes, discover_functions
from sfdcflex.runtime.app import App, Limits
from sfdcflex.runtime.server import FunctionsServer, start_in_thread

# lanes.py: a second pytest process for part of a long run; background.py: installs that some
# slow tests wait for, begun as soon as they are collected.
pytest_plugins = ["lanes", "background"]

# A shell starts background jobs (`pytest ... &`) with SIGINT ignored, and children inherit
# that: run.py would then ignore the Ctrl+C tests send it and each stop would wait out its 10 s.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

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


class TimeoutsSeen(Transport):
    """The real pooled transport (real sockets), noting each call's timeout: for tests of the
    clients' default timeouts."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float] = []

    def send(self, method, url, headers, body, *, timeout, idempotent):
        self.timeouts.append(timeout)
        return super().send(method, url, headers, body, timeout=timeout, idempotent=idempotent)


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
        server_limits = options.pop("server_limits", None)
        app = App(build_routes(functions, options.pop("aliases", None)), functions, **options)
        server = FunctionsServer(("127.0.0.1", 0), app, read_timeout=read_timeout, limits=server_limits)
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


# --- the whole product against the stand-ins ------------------------------------------------

FLEX_URL = "https://flex.example.com"
STATE_SECRET = "s" * 48


class Crm:
    """The real functions on a real server, wired to the Salesforce, IAM and Sync stand-ins."""

    def __init__(self, sf, iam, sync, tmp_path: Path, store: str = "json", **settings) -> None:
        from sfdcflex.cli import build_app
        from sfdcflex.config import load_config
        self.sf, self.iam, self.sync = sf, iam, sync
        self.store_path = tmp_path / "store" / "tokens.json"
        values = {
            "ACCOUNT_SID": iam.account_sid, "AUTH_TOKEN": iam.auth_token,
            "SYNC_SERVICE_SID": sync.service_sid, "SFDC_INSTANCE_URL": sf.url,
            "SFDC_ORG_ID": sf.org_id, "SFDC_CLIENT_ID": sf.client_id,
            "SFDC_CLIENT_SECRET": sf.client_secret, "FLEX_INSTANCE_URL": FLEX_URL,
            "TWILIO_IAM_URL": iam.url, "TWILIO_SYNC_URL": sync.url, "TOKEN_STORE": store,
            "TOKEN_STORE_PATH": str(self.store_path), "STATE_SECRET": STATE_SECRET, **settings}
        self.config = load_config(values)
        self.server = FunctionsServer(("127.0.0.1", 0), None)
        self.url = self.server.url
        self.app = build_app(self.config, public_url=self.url)
        self.server.app = self.app
        self.services = self.app.services
        start_in_thread(self.server)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.app.close()

    def post(self, path: str, body: dict, **kwargs) -> Answer:
        return call(self.url, "POST", path, body=body, **kwargs)

    def token(self, identity: str) -> str:
        return self.iam.issue_token(identity)

    def link(self, identity: str, sfdc_username: str | None = None, token: str | None = None) -> Answer:
        """The whole browser flow over HTTP: /auth, Salesforce's login page, the redirect back."""
        from sfdcflex.demo.standins.salesforce import submit_consent
        token = token or self.token(identity)
        start = self.post("/auth", {"Token": token, "origin": self.url})
        assert start.status == 200, start.body
        location = submit_consent(start.json()["authorize_url"], sfdc_username or identity)
        assert location.startswith(self.url + "/oauth-callback?"), location
        return call(self.url, "GET", location[len(self.url):])


def seed(sf, iam) -> None:
    """A small org: two agents who match their Salesforce users, one who doesn't, one foreign user."""
    for name in ("alice@example.com", "bob@example.com", "mallory@example.com"):
        iam.add_agent(name, name.split("@")[0].title())
    sf.add_user("alice@example.com", "Alice Agent")
    sf.add_user("bob@example.com", "Bob Agent")
    sf.add_user("mallory.other@example.com", "Mallory Other")
    sf.add_user("eve@example.com", "Eve Elsewhere", org_id="00D000000000001AAA")
    engines = sf.add_account("Analytical Engines", type="Customer - Direct", account_number="AE-1001",
                             sla="Gold", priority="High")
    looms = sf.add_account("Jacquard Looms", type="Partner", account_number="JL-7", sla="Silver",
                           priority="Low")
    sf.add_contact("Charles Babbage", account_id=engines, title="Founder", phone="(415) 555-0101",
                   last_modified="2024-01-01T00:00:00.000+0000")
    sf.add_contact("Ada Lovelace", account_id=engines, title="Chief Analyst", phone="415.555.0101",
                   last_modified="2025-06-01T00:00:00.000+0000")
    sf.add_contact("Joseph Jacquard", account_id=looms, title="Weaver", phone="+44 20 7946 0958")
    sf.add_contact("Mary Mobile", account_id=looms, title="Field Rep", mobile_phone="+1 212 555 0103")
    sf.add_contact("Nina New", account_id=looms, title="Just Added", phone="646-555-0199", indexed=False)


@contextmanager
def crm_on_own_standins(folder: Path, **settings) -> Iterator[Crm]:
    """A Crm on seeded stand-ins of its own, for a module-scoped fixture; all stopped after."""
    from sfdcflex.demo.standins import IamStandIn, SalesforceStandIn, SyncStandIn
    standins = SalesforceStandIn(), IamStandIn(), SyncStandIn()
    for standin in standins:
        standin.start()
    try:
        seed(standins[0], standins[1])
        made = Crm(*standins, folder, **settings)
        try:
            yield made
        finally:
            made.close()
    finally:
        for standin in standins:
            standin.stop()


@pytest.fixture
def crm_factory(tmp_path):
    from sfdcflex.demo.standins import IamStandIn, SalesforceStandIn, SyncStandIn
    made: list[Crm] = []
    sf, iam, sync = SalesforceStandIn(), IamStandIn(), SyncStandIn()
    for standin in (sf, iam, sync):
        standin.start()
    seed(sf, iam)

    def make(**settings) -> Crm:
        crm = Crm(sf, iam, sync, tmp_path, **settings)
        made.append(crm)
        return crm

    yield make
    for crm in made:
        crm.close()
    for standin in (sf, iam, sync):
        standin.stop()


@pytest.fixture
def crm(crm_factory) -> Crm:
    return crm_factory()


@pytest.fixture
def measure_children(monkeypatch, tmp_path_factory):
    """Python children this test starts (the benchmark's servers and stand-ins) add to the suite's
    coverage, when it is measured: through coverage's start-up hook (COVERAGE_PROCESS_START), each
    child writing its own data file, which pytest-cov combines at the end. Only tests that ask for
    it: a measured child starts slower, and most children run code the suite measures in-process."""
    import os
    try:
        import coverage
    except ImportError:
        return
    current = coverage.Coverage.current()
    if current is None:
        return
    rc = tmp_path_factory.mktemp("coverage") / "coveragerc"
    rc.write_text("[run]\nbranch = True\nparallel = True\nconcurrency = thread\nsource = sfdcflex\n"
                  f"data_file = {os.path.abspath(current.config.data_file)}\n")
    monkeypatch.setenv("COVERAGE_PROCESS_START", str(rc))

