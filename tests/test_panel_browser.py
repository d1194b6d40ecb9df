"""The agent panel in headless Chromium: against a stub functions server, and end to end on `run.py --demo`.

The stub part serves the panel from one origin and the functions from another (the
FLEX_INSTANCE_URL set-up), so it checks the `?functions=` base, CORS with the exposed
Server-Timing header, the popup's postMessage and the origin check without the real server.
The end-to-end part starts `python run.py --demo --port 0` and drives the whole flow.
"""
from __future__ import annotations

import http.server
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cdp import Chromium, Page, find_chromium, stop_process

ROOT = Path(__file__).resolve().parent.parent
PANEL = ROOT / "sfdcflex" / "demo" / "panel"
SCREENSHOT = Path(__file__).resolve().parent / "screenshots" / "panel.png"

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
HIT_TIMING = 'flex;desc="cached";dur=0.2, store;dur=0.1, cache;desc="hit";dur=0.01, total;dur=0.4'


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
    """Serves the panel's three files, as the Flex instance's origin would host a plugin."""

    def do_GET(self) -> None:
        name = {"/": "index.html"}.get(self.path.split("?")[0], self.path.split("?")[0].lstrip("/"))
        path = PANEL / name
        if name not in {"index.html", "panel.css", "panel.js"}:
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
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def config(self) -> dict:
        return {"iam_url": self.url, "mode": "demo", "salesforce_url": "https://example.my.salesforce.com",
                "agents": [{"realm_user_id": "alice", "name": "Alice Agent"},
                           {"realm_user_id": "carol", "name": "Carol Agent"}],
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


@pytest.fixture(scope="module")
def browser():
    with Chromium.launch() as chromium:
        yield chromium


def open_panel(browser: Chromium, site: StubServer, functions_url: str) -> Page:
    page = browser.new_page(f"{site.url}/?functions={functions_url}")
    page.wait_for("document.querySelectorAll('#agent-select option[value]').length > 0 || "
                  "!document.querySelector('#error').hidden")
    return page


def sign_in(page: Page, realm_user_id: str) -> None:
    page.evaluate(f"document.querySelector('#agent-select').value = {json.dumps(realm_user_id)}")
    page.click("#sign-in")
    page.wait_for("!document.querySelector('#error').hidden || "
                  f"document.querySelector('#agent-status').dataset.agent === {json.dumps(realm_user_id)}"
                  " && ['true', 'false'].includes(document.querySelector('#sfdc-status').dataset.linked)")
    assert page.text("#error") == "", page.text("#error")


def pick(page: Page, caller: str, state: str) -> None:
    page.click(f'#task-list .task[data-caller="{caller}"]')
    page.wait_for(f"document.querySelector('#contact-message').dataset.state === {json.dumps(state)}")


def card_fields(page: Page) -> dict:
    return page.evaluate("Object.fromEntries([...document.querySelectorAll('#contact-card [data-field]')]"
                         ".map(el => [el.dataset.field, el.dataset.value]))")


def hops(page: Page) -> list[list]:
    return page.evaluate("[...document.querySelectorAll('#flow-hops .hop')]"
                         ".map(li => [li.dataset.hop, li.textContent])")


def test_panel_shows_the_card_and_the_cache_hit_across_origins(stub, browser):
    site, functions = stub
    page = open_panel(browser, site, functions.url)
    sign_in(page, "alice")
    assert page.text("#sfdc-status") == "Logged into Salesforce as Alice Agent (alice@example.com)"
    pick(page, "+14155550101", "found")
    assert card_fields(page) == {k: v for k, v in STUB_CONTACT.items() if k.startswith("cust_") and k != "cust_id"}
    assert page.evaluate("document.querySelector('#contact-name-link').href") == STUB_CONTACT["cust_record_url"]
    assert [name for name, _ in hops(page)] == ["flex", "store", "cache", "sfdc-search", "total"]
    assert 'SOSL, 1 "call"' in hops(page)[3][1]
    assert page.evaluate("document.querySelector('#flow').dataset.cache") == "miss"
    pick(page, "+15005550000", "no_match")
    pick(page, "+14155550101", "found")
    assert page.text("#cache-badge") == "cache hit — no Salesforce call"
    assert page.evaluate("document.querySelector('#flow').dataset.route") == "/get-contact"
    assert [name for name, _ in hops(page)] == ["flex", "store", "cache", "total"]
    assert ("/get-contact", {"Token": "flex-alice", "phone": "+14155550101"}) in functions.calls
    assert page.errors == []


def test_errors_are_shown_in_words(stub, browser):
    site, functions = stub
    page = open_panel(browser, site, functions.url)
    sign_in(page, "alice")
    pick(page, "+15005550000", "no_match")
    assert page.text("#contact-message") == "No matching contact in Salesforce for +15005550000."
    pick(page, "+15005550502", "error")
    assert "Salesforce answered 503 Service Unavailable" in page.text("#error")
    assert page.evaluate("document.querySelector('#flow').dataset.status") == "502"

    unreachable = open_panel(browser, site, "http://127.0.0.1:9")
    assert "Could not reach the functions server" in unreachable.text("#error")


def test_the_popup_refusal_reaches_the_panel_and_forged_messages_do_not(stub, browser):
    site, functions = stub
    page = open_panel(browser, site, functions.url)
    sign_in(page, "carol")
    assert page.text("#sfdc-status") == "Not connected to Salesforce yet."
    # The page's own origin is not the functions origin, so this message must be ignored.
    page.evaluate("window.postMessage({source: 'sfdcflex', type: 'link_failed', message: 'forged'}, '*')")
    page.click("#connect")
    page.wait_for("!document.querySelector('#error').hidden")
    assert page.text("#error") == ("Salesforce was not connected: "
                                   "carol.sf@example.com is not the Salesforce user for carol")
    assert page.evaluate("document.querySelector('#error').dataset.code") == "identity_mismatch"
    assert ("/auth", {"Token": "flex-carol", "origin": site.url}) in functions.calls
    assert page.errors == []


def test_a_blocked_popup_is_said_in_words(stub, browser):
    site, functions = stub
    page = open_panel(browser, site, functions.url)
    # Scripted clicks carry no user activation (a real click would grant it for seconds),
    # so Chromium's popup blocker refuses the window.open behind Connect.
    page.evaluate("document.querySelector('#agent-select').value = 'carol';"
                  "document.querySelector('#sign-in-form').requestSubmit()")
    page.wait_for("!document.querySelector('#connect').hidden")
    page.evaluate("document.querySelector('#connect').click()")
    page.wait_for("!document.querySelector('#error').hidden")
    assert "blocked the Salesforce sign-in window" in page.text("#error")


# ---- end to end: python run.py --demo ----

BANNER = re.compile(r"Agent panel: (http://127\.0\.0\.1:\d+/)")


def start_demo(demo_dir: Path) -> tuple[subprocess.Popen, str, list[str]]:
    """Start the demo on a free port and return it, the panel URL and its output so far."""
    process = subprocess.Popen(
        [sys.executable, "run.py", "--demo", "--port", "0", "--demo-dir", str(demo_dir)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout] + [lines.put(None)],
                     daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        match = BANNER.search(line)
        if match:
            return process, match.group(1), seen
    stop_process(process)
    raise AssertionError("run.py --demo printed no 'Agent panel:' line within 15 s:\n" + "".join(seen))


def approve_login(popup: Page, sfdc_username: str) -> None:
    """On the Salesforce stand-in's login page: pick the user, then press Allow."""
    popup.wait_for("document.readyState === 'complete' && !!document.querySelector('form')")
    chosen = popup.evaluate(f"""(() => {{
        const radio = [...document.querySelectorAll('input[type=radio]')]
            .find(r => r.value.toLowerCase() === {json.dumps(sfdc_username.lower())});
        if (radio) radio.checked = true;
        return Boolean(radio);
    }})()""")
    assert chosen, f"the login page offers no Salesforce user {sfdc_username}"
    popup.evaluate("[...document.querySelectorAll('button')].find(b => /^allow$/i.test(b.textContent.trim())).click()")


def connect_through_popup(browser: Chromium, page: Page, sfdc_username: str) -> None:
    """Press Connect Salesforce, approve in the popup, and wait for the panel to hear back."""
    page.evaluate("document.querySelector('#error').hidden = true")
    page.click("#connect")
    approve_login(browser.wait_for_page("/services/oauth2/authorize", timeout=10), sfdc_username)
    page.wait_for("document.querySelector('#sfdc-status').dataset.linked === 'true' || "
                  "!document.querySelector('#error').hidden", timeout=15)


def expected_card(demo_data, caller: str) -> dict:
    """The card the panel must show for `caller`, computed from the demo data set."""
    national = caller[-10:] if caller.startswith("+1") else None
    for name, account, title, phone, mobile, _ in demo_data.CONTACTS:
        numbers = ["".join(ch for ch in number if ch.isdigit()) for number in (phone, mobile) if number]
        if national and any(number.endswith(national) for number in numbers):
            acct_name, acct_type, acct_num, sla, priority = demo_data.ACCOUNTS[account]
            return {"cust_name": name, "cust_title": title, "cust_acct_name": acct_name,
                    "cust_acct_type": acct_type, "cust_acct_num": acct_num,
                    "cust_acct_sla": sla, "cust_acct_priority": priority}
    raise AssertionError(f"no demo contact for {caller}")


def test_the_demo_end_to_end(tmp_path):
    from sfdcflex.demo.standins import demo_data

    process, panel_url, _ = start_demo(tmp_path / "demo")
    try:
        with Chromium.launch() as browser:
            page = browser.new_page(panel_url)
            page.wait_for("document.querySelectorAll('#agent-select option[value]').length > 0")
            link_alice_and_look_up(browser, page, demo_data)
            refuse_carol(browser, page)
            assert page.errors == []
    finally:
        stop_process(process)


def link_alice_and_look_up(browser: Chromium, page: Page, demo_data) -> None:
    sign_in(page, "alice@sfdcflex.demo")
    connect_through_popup(browser, page, "alice@sfdcflex.demo")
    assert page.text("#error") == "", page.text("#error")
    assert page.text("#sfdc-status") == "Logged into Salesforce as Alice Johnson (alice@sfdcflex.demo)"

    known = "+12125550103"
    pick(page, known, "found")
    fields = card_fields(page)
    assert {k: v for k, v in fields.items() if k != "cust_record_url"} == expected_card(demo_data, known)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/lightning/r/Contact/003\w{15}/view", fields["cust_record_url"])
    assert page.evaluate("document.querySelector('#flow').dataset.cache") == "miss"
    assert any(name.startswith("sfdc-") for name, _ in hops(page))
    if os.environ.get("SFDCFLEX_SCREENSHOT") == "1":
        page.screenshot(SCREENSHOT)

    pick(page, "+13125550199", "no_match")
    assert page.text("#contact-message") == "No matching contact in Salesforce for +13125550199."
    pick(page, known, "found")
    assert page.text("#cache-badge") == "cache hit — no Salesforce call"
    assert not any(name.startswith("sfdc-") for name, _ in hops(page))

    pick(page, "+442079460959", "found")
    assert card_fields(page)["cust_name"] == "Amelia Clarke"

    page.click("#disconnect")
    page.wait_for("document.querySelector('#sfdc-status').dataset.linked === 'false'")
    assert page.evaluate("document.querySelector('#connect').hidden") is False


def refuse_carol(browser: Chromium, page: Page) -> None:
    sign_in(page, "carol@sfdcflex.demo")
    connect_through_popup(browser, page, "carol.ops@sfdcflex.demo")
    assert page.evaluate("document.querySelector('#sfdc-status').dataset.linked") == "false"
    refusal = page.text("#error")
    assert refusal.startswith("Salesforce was not connected: ") and len(refusal) > 40, refusal


def test_the_demo_panel_as_a_flex_plugin_on_another_origin(tmp_path):
    """The panel on FLEX_INSTANCE_URL (localhost) calls the functions on 127.0.0.1: CORS for real."""
    process, panel_url, _ = start_demo(tmp_path / "demo")
    try:
        flex_origin = panel_url.replace("127.0.0.1", "localhost").rstrip("/")
        with Chromium.launch() as browser:
            page = browser.new_page(f"{flex_origin}/?functions={panel_url.rstrip('/')}")
            page.wait_for("document.querySelectorAll('#agent-select option[value]').length > 0")
            assert page.evaluate("location.origin") == flex_origin
            sign_in(page, "bob@sfdcflex.demo")
            connect_through_popup(browser, page, "bob@sfdcflex.demo")
            assert page.text("#sfdc-status") == "Logged into Salesforce as Bob Martinez (bob@sfdcflex.demo)"
            pick(page, "+14155550101", "found")
            assert card_fields(page)["cust_name"] == "Jane Cooper"  # the newer of two records
            assert any(name == "sfdc-search" for name, _ in hops(page))  # Server-Timing exposed cross-origin
            assert page.errors == []
    finally:
        stop_process(process)
