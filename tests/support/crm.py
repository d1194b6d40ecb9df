"""The whole product against the stand-ins: the real functions on a real server, seeded data."""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, quote, urlsplit

from sfdcflex.runtime.app import Limits
from sfdcflex.runtime.http.limits import ServerLimits
from sfdcflex.runtime.http.server import FunctionsServer, start_in_thread
from sfdcflex.runtime.http.sockets import listen, url_of

from .http import Answer, call

FLEX_URL = "https://flex.example.com"
STATE_SECRET = "s" * 48


class Crm:
    """The real functions on a real server, wired to the Salesforce, IAM and Sync stand-ins."""

    def __init__(self, sf, iam, sync, tmp_path: Path, store: str = "json", *,
                 limits: Limits = Limits(), **settings) -> None:
        from sfdcflex.assembly import build_app
        from sfdcflex.config import load_config
        from sfdcflex.metrics import Metrics
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
        sock = listen(("127.0.0.1", 0))  # first: the app needs its URL for the OAuth callback
        self.url = url_of(sock)
        self.metrics = Metrics()   # wired as cli.py wires it: the server's gauges too
        self.app = build_app(self.config, self.config.public_url or self.url, limits=limits,
                             metrics=self.metrics)
        self.server = FunctionsServer(sock, self.app, ServerLimits())
        self.metrics.watch_server(self.server)
        self.services = self.app.services
        start_in_thread(self.server)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.app.close()

    def post(self, path: str, body: dict, **kwargs) -> Answer:
        return call(self.url, "POST", path, body=body, **kwargs)

    def links(self) -> dict:
        """The JSON token store's links as saved on disk: {identity: {access_token, ...}}."""
        return json.loads(self.store_path.read_text())["agents"]

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

    def consent(self, identity: str, sfdc_username: str | None = None) -> tuple[str, str]:
        """/auth for `identity` (the panel: this server), then Salesforce's page signed in as
        `sfdc_username`: the code and state Salesforce redirects back with."""
        from sfdcflex.demo.standins.salesforce import submit_consent
        start = self.post("/auth", {"Token": self.token(identity), "origin": self.url})
        location = submit_consent(start.json()["authorize_url"], sfdc_username or identity)
        query = parse_qs(urlsplit(location).query)
        return query["code"][0], query["state"][0]

    def callback(self, code: str, state: str) -> Answer:
        """The browser's redirect back: GET /oauth-callback?code&state."""
        return call(self.url, "GET", f"/oauth-callback?code={quote(code)}&state={quote(state)}")

    def relay(self, identity: str, code: str, state: str) -> Answer:
        """The code and state relayed by the agent's panel: POST /oauth-callback with the Flex token."""
        return self.post("/oauth-callback", {"Token": self.token(identity), "code": code, "state": state})


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
