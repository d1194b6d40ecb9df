"""python run.py --demo: the whole data flow on a laptop, with no .env and no network.

The stand-ins for Salesforce, Twilio IAM and Twilio Sync run in this process on loopback,
filled with demo data; the real functions run on the real runtime against them, and the agent
panel (sfdcflex/demo/panel) is served at `/` in place of Flex's CRM panel.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable

from ..runtime.app import Builtin
from ..runtime.response import encode_json
from ..runtime.routes import Asset, load_assets
from .standins import IamStandIn, SalesforceStandIn, SyncStandIn
from .standins.demo_data import seed_demo
from .trace import PATH as TRACE_PATH, LinkTrace

PANEL = Path(__file__).resolve().parent / "panel"


class Demo:
    """The stand-ins, their data, and the settings that point the functions at them."""

    def __init__(self, folder: Path, owns_folder: bool, store: str, server_url: str,
                 trace: Callable[[str], None] | None = None) -> None:
        self.folder, self._owns_folder = folder, owns_folder
        self.salesforce, self.iam, self.sync = SalesforceStandIn(), IamStandIn(), SyncStandIn()
        for standin in (self.salesforce, self.iam, self.sync):
            standin.start()
        self.data = seed_demo(self.salesforce, self.iam)
        self.salesforce.record_pages.panel_url = f"{server_url}/"
        self.store = store
        # The Link tab's steps; with --trace also printed (by `trace`) as they happen.
        self.trace = LinkTrace(store, printer=trace)
        self.salesforce.on_exchange = self.trace.standin_exchange
        # The panel at 127.0.0.1 is same-origin; the same panel opened via localhost is another
        # origin, and FLEX_INSTANCE_URL names it, so the CORS path of a real Flex plugin is live too.
        self.flex_url = server_url.replace("127.0.0.1", "localhost", 1)
        self.settings = {
            "ACCOUNT_SID": self.iam.account_sid, "AUTH_TOKEN": self.iam.auth_token,
            "SYNC_SERVICE_SID": self.sync.service_sid,
            "SFDC_INSTANCE_URL": self.salesforce.url, "SFDC_ORG_ID": self.salesforce.org_id,
            "SFDC_CLIENT_ID": self.salesforce.client_id,
            "SFDC_CLIENT_SECRET": self.salesforce.client_secret,
            "FLEX_INSTANCE_URL": self.flex_url, "PUBLIC_URL": server_url,
            "TWILIO_IAM_URL": self.iam.url, "TWILIO_SYNC_URL": self.sync.url,
            "TOKEN_STORE": store, "TOKEN_STORE_PATH": str(folder / "tokens.json"),
        }

    @classmethod
    def start(cls, *, folder: Path | None = None, store: str = "json", server_url: str,
              trace: Callable[[str], None] | None = None) -> Demo:
        owns = folder is None
        folder = Path(tempfile.mkdtemp(prefix="sfdcflex-demo-")) if owns else Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return cls(folder, owns, store, server_url, trace)

    def builtins(self) -> dict[str, Builtin]:
        """The demo's own GET routes: the last link's steps for the panel's Link tab."""
        return {TRACE_PATH: self.trace.endpoint}

    def assets(self) -> dict[str, Asset]:
        """The panel's files plus demo-config.json, which tells the panel where the stand-ins are."""
        assets = load_assets(PANEL)
        config = {"mode": "demo", "iam_url": self.iam.url, "salesforce_url": self.salesforce.url,
                  "flex_instance_url": self.flex_url, "agents": self.data["agents"],
                  "tasks": self.data["tasks"], "token_store": self.store}
        assets["/demo-config.json"] = Asset("application/json", encode_json(config))
        return assets

    def banner(self, server_url: str) -> list[str]:
        store = (f"Sync stand-in ({self.sync.url})" if self.store == "sync"
                 else f"JSON file {self.folder / 'tokens.json'}")
        return [
            "",
            "  DEMO MODE: local stand-ins play Salesforce, Twilio IAM and Twilio Sync.",
            "  No real org is contacted and the data is made up.",
            "",
            f"  Agent panel: {server_url}/",
            f"  Same panel as a Flex plugin on another origin: {self.flex_url}/?functions={server_url}",
            f"  Salesforce stand-in (login page, REST): {self.salesforce.url}",
            f"  Twilio IAM stand-in (Flex tokens):      {self.iam.url}",
            f"  Twilio Sync stand-in:                   {self.sync.url}",
            f"  Token store: {store}",
            "  Agents: " + ", ".join(a["realm_user_id"] for a in self.data["agents"]),
            "",
        ]

    def stop(self) -> None:
        for standin in (self.salesforce, self.iam, self.sync):
            standin.stop()
        if self._owns_folder:
            shutil.rmtree(self.folder, ignore_errors=True)
