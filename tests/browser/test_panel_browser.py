"""The agent panel in headless Chromium against a stub functions server (the demo itself: test_demo_browser.py).

The panel is served from one origin and the functions from another (the FLEX_INSTANCE_URL
set-up), so this checks the `?functions=` base, CORS with the exposed Server-Timing header, the
popup's postMessage and the origin check, and the states the demo cannot easily reach (a slow
or failing link check), with answers fixed in advance.
"""
from __future__ import annotations

import http.server
import json
import threading

import pytest

from tests.browser.cdp import Chromium, find_chromium
from tests.browser.panel import (CHECKING, NOT_LINKED, ROOT, UNKNOWN, card_fields, focused, hops,
                           link_state, live_text, open_panel, pick, sign_in)

PANEL = ROOT / "sfdcflex" / "demo" / "panel"
PANEL_FILES = {"index.html", "panel.css", "panel.js", "flow.js", "card.js", "calllog.js", "link.js"}

pytestmark = [pytest.mark.slow, pytest.mark.skipif(   # a real browser
    find_chromium() is None, reason="no chromium binary (install Debian's chromium or set $CHROMIUM)")]

CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".js": "text/javascript; charset=utf-8"}


# ---- a stub functions server on its own origin ----

STUB_CONTACT = {
    "cust_name": "Ada Lovelace", "cust_title": "Head of Analytics",
    "cust_record_url": "https://example.my.salesforce.com/lightning/r/Contact/003000000000001AAA/view",
    "cust_acct_name": "Analytical Engines", "cust_acct_type": "Customer - Direct",
    "cust_acct_num": "AE-1843", "cust_acct_sla": "Gold", "cust_acct_priority": "High",
    "cust_id": "003000000000001AAA", "matches": 2,
}
# A desc with a comma and an escaped quote inside a quoted string, as RFC 9110 allows.
MISS_TIMING = ('flex;desc="cached";dur=0.3, store;desc="json file";dur=0.1, '
               'cache;desc="miss";dur=0.02, sfdc-search;desc="SOSL, 1 \\"call\\"";dur=14.5, total;dur=15.2')
# A hop the panel has no label for is named by its description, never by its raw name.
HIT_TIMING = ('flex;desc="cached";dur=0.2, store;dur=0.1, cache;desc="hit";dur=0.01, '
              'audit-log;desc="Audit log write";dur=0.1, total;dur=0.4')


class StubFunctions(http.server.BaseHTTPRequestHandler):
    """The panel's functions, IAM token and OAuth popup, answered from fixed data."""

    server: StubServer

    def do_OPTIONS(self) -> None:
        self.reply(204, b"", "text/plain")

    def do_GET(self) -> None:
        if self.path == "/demo-config.json":
            self.reply_json(200, self.server.config())
        elif self.path.startswith("/authorize"):
            # Stands in for login page + /oauth-callback: report to the opener, then close.
            message = {"source": "sfdcflex", "type": "link_failed", "error": "identity_mismatch",
                       "message": "carol.sf@example.com is not the Salesforce user for carol"}
            page = (f"<script>window.opener.postMessage({json.dumps(message)}, "
                    f"{json.dumps(self.server.panel_origin)}); window.close();</script>")
            self.reply(200, page.encode(), "text/html")
        else:
            self.reply_json(404, {"error": "not_found", "message": self.path})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.server.calls.append((self.path, body))
        if self.path == "/demo/token":
            return self.reply_json(200, {"token": "flex-" + body["realm_user_id"], "expiration": "2099"})
        agent = str(body.get("Token", "")).removeprefix("flex-")
        if self.path == "/get-user":
            if agent == "slow":  # holds the answer until the test has seen "Checking…"
                self.server.release.wait(10)
            if agent == "broken":
                return self.reply_json(502, {"error": "salesforce_unavailable",
                                             "message": "Salesforce answered 503 Service Unavailable"})
            if agent == "alice":
                return self.reply_json(200, {"sfdc_username": "alice@example.com", "display_name": "Alice Agent"})
            return self.reply_json(404, {"error": "not_linked", "message": "not linked"})
        if self.path == "/auth":
            return self.reply_json(200, {"authorize_url": self.server.url + "/authorize?x=1"})
        if self.path == "/get-contact":
            return self.get_contact(agent, body.get("phone"))
        self.reply_json(404, {"error": "not_found", "message": self.path})

    def get_contact(self, agent: str, phone: str) -> None:
        if phone == "+15005550000":
            return self.reply_json(404, {"error": "no_match", "message": "no contact"})
        if phone == "+15005550502":
            return self.reply_json(502, {"error": "salesforce_unavailable",
                                         "message": "Salesforce answered 503 Service Unavailable"})
        hit = (agent, phone) in self.server.seen
        self.server.seen.add((agent, phone))
        self.reply_json(200, STUB_CONTACT, {"Server-Timing": HIT_TIMING if hit else MISS_TIMING})

    def reply_json(self, status: int, payload: dict, headers: dict | None = None) -> None:
        self.reply(status, json.dumps(payload).encode(), "application/json", headers)

    def reply(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Access-Control-Allow-Origin", self.server.panel_origin)
        self.send_header("Access-Control-Allow-Headers", "Content-Type")
        self.send_header("Access-Control-Expose-Headers", "Server-Timing")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class StaticPanel(http.server.BaseHTTPRequestHandler):
    """Serves the panel's files, as the Flex instance's origin would host a plugin."""

    def do_GET(self) -> None:
        name = {"/": "index.html"}.get(self.path.split("?")[0], self.path.split("?")[0].lstrip("/"))
        path = PANEL / name
        if name not in PANEL_FILES:
            self.send_error(404)
            return
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPES[path.suffix])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class StubServer(http.server.ThreadingHTTPServer):
    def __init__(self, handler, panel_origin: str = "") -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.panel_origin = panel_origin
        self.calls: list[tuple[str, dict]] = []
        self.seen: set[tuple[str, str]] = set()
        self.release = threading.Event()
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def config(self) -> dict:
        return {"iam_url": self.url, "mode": "demo", "salesforce_url": "https://example.my.salesforce.com",
                "agents": [{"realm_user_id": "alice", "name": "Alice Agent"},
                           {"realm_user_id": "carol", "name": "Carol Agent"},
                           {"realm_user_id": "slow", "name": "Slow Agent"},
                           {"realm_user_id": "broken", "name": "Broken Agent"}],
                "tasks": [{"caller": "+14155550101", "label": "Known caller"},
                          {"caller": "+15005550000", "label": "Unknown caller"},
                          {"caller": "+15005550502", "label": "Salesforce down"}]}

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture(scope="module")
def stub():
    site = StubServer(StaticPanel)
    functions = StubServer(StubFunctions, panel_origin=site.url)
    try:
        yield site, functions
    finally:
        site.stop()
        functions.stop()


def open_stub_panel(browser: Chromium, site: StubServer, functions_url: str, width: int = 1280):
    return open_panel(browser, f"{site.url}/?functions={functions_url}", width)


def test_panel_shows_the_card_and_the_cache_hit_across_origins(stub, browser):
    site, functions = stub
    page = open_stub_panel(browser, site, functions.url)
    sign_in(page, "alice")
    assert link_state(page) == ("linked", "Logged into Salesforce as Alice Agent (alice@example.com).")
    pick(page, "+14155550101", "found")
    assert card_fields(page) == {k: v for k, v in STUB_CONTACT.items() if k.startswith("cust_") and k != "cust_id"}
    assert page.evaluate("document.querySelector('#contact-name-link').href") == STUB_CONTACT["cust_record_url"]
    # Descriptions the panel does not know are shown as they are, after the plain label.
    assert hops(page) == [["flex", "Flex token check", "cached"], ["store", "Token store", "json file"],
                          ["cache", "Answer cache", "miss"],
                          ["sfdc-search", "Salesforce search (SOSL)", 'SOSL, 1 "call"'],
                          ["total", "Total on the server", ""]]
    assert page.evaluate("document.querySelector('#flow').dataset.cache") == "miss"
    assert page.text("#cache-badge") == "cache miss"
    pick(page, "+15005550000", "no_match")
    pick(page, "+14155550101", "found")
    assert page.text("#cache-badge") == "cache hit — no Salesforce call"
    assert page.evaluate("document.querySelector('#flow').dataset.route") == "/get-contact"
    assert [name for name, _, _ in hops(page)] == ["flex", "store", "cache", "audit-log", "total"]
    assert hops(page)[3][1:] == ["Audit log write", ""]
    assert ("/get-contact", {"Token": "flex-alice", "phone": "+14155550101"}) in functions.calls
    assert page.errors == []


def test_errors_are_shown_in_words(stub, browser):
    site, functions = stub
    page = open_stub_panel(browser, site, functions.url)
    sign_in(page, "alice")
    pick(page, "+15005550000", "no_match")
    assert page.text("#contact-message") == "No matching contact in Salesforce for +15005550000."
    pick(page, "+15005550502", "error")
    assert "Salesforce answered 503 Service Unavailable" in page.text("#error")
    assert page.evaluate("document.querySelector('#flow').dataset.status") == "502"
    assert live_text(page) == "The lookup for +15005550502 failed."
    assert focused(page) == "contact-title"

    unreachable = open_stub_panel(browser, site, "http://127.0.0.1:9")
    assert "Could not reach the functions server" in unreachable.text("#error")


def test_the_popup_refusal_reaches_the_panel_and_forged_messages_do_not(stub, browser):
    site, functions = stub
    page = open_stub_panel(browser, site, functions.url)
    sign_in(page, "carol")
    assert link_state(page) == ("not_linked", NOT_LINKED)
    # The page's own origin is not the functions origin, so this message must be ignored.
    page.evaluate("window.postMessage({source: 'sfdcflex', type: 'link_failed', message: 'forged'}, '*')")
    page.click("#connect")
    page.wait_for("!document.querySelector('#error').hidden")
    assert page.text("#error") == ("Salesforce was not connected: "
                                   "carol.sf@example.com is not the Salesforce user for carol")
    assert page.evaluate("document.querySelector('#error').dataset.code") == "identity_mismatch"
    assert ("/auth", {"Token": "flex-carol", "origin": site.url}) in functions.calls
    assert focused(page) == "connect"
    assert page.errors == []


def test_a_blocked_popup_is_said_in_words(stub, browser):
    site, functions = stub
    page = open_stub_panel(browser, site, functions.url)
    # Scripted clicks carry no user activation (a real click would grant it for seconds),
    # so Chromium's popup blocker refuses the window.open behind Connect.
    page.evaluate("document.querySelector('#agent-select').value = 'carol';"
                  "document.querySelector('#sign-in-form').requestSubmit()")
    page.wait_for("!document.querySelector('#connect').hidden")
    page.evaluate("document.querySelector('#connect').click()")
    page.wait_for("!document.querySelector('#error').hidden")
    assert "blocked the Salesforce sign-in window" in page.text("#error")


@pytest.mark.parametrize("width", [400, 1280])
def test_the_link_check_says_what_it_is_doing_and_when_it_failed(stub, browser, width):
    site, functions = stub
    page = open_stub_panel(browser, site, functions.url, width)
    functions.release.clear()
    page.evaluate("document.querySelector('#agent-select').value = 'slow'")
    page.click("#sign-in")
    page.wait_for("document.querySelector('#sfdc-status').dataset.state === 'checking'")
    assert link_state(page) == ("checking", CHECKING)
    assert page.evaluate("document.querySelector('#connect').hidden") is True
    functions.release.set()
    page.wait_for("document.querySelector('#sfdc-status').dataset.state === 'not_linked'")

    page.evaluate("document.querySelector('#agent-select').value = 'broken'")
    page.click("#sign-in")
    page.wait_for("document.querySelector('#sfdc-status').dataset.state === 'unknown'")
    assert link_state(page) == ("unknown", UNKNOWN)
    assert page.text("#error") == ("Checking the Salesforce link failed: "
                                   "Salesforce answered 503 Service Unavailable")
    assert page.errors == []
