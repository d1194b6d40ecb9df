"""The browser harness's DevTools client: CDP against a page from http.server, in a real Chromium."""
from __future__ import annotations

import http.server
import os
import threading
import time
from pathlib import Path

import pytest

from tests.browser.cdp import CDPError, Chromium, find_chromium


needs_chromium = pytest.mark.skipif(find_chromium() is None,
                                    reason="no chromium binary (install Debian's chromium or set $CHROMIUM)")


TEST_PAGE = b"""<!doctype html><html><head><link rel="icon" href="data:,"></head><body>
<h1 id="title">harness page</h1>
<button id="open" onclick="window.open('/popup.html?from=test', 'child', 'width=300,height=300')">open</button>
<button id="count" onclick="this.dataset.n = Number(this.dataset.n || 0) + 1">count</button>
<script>console.error("deliberate console error");</script>
</body></html>"""


POPUP_PAGE = b"""<!doctype html><html><body><p id="p">popup</p>
<button id="reply" onclick="window.opener.postMessage('hello opener', location.origin)">reply</button>
<script>window.name = 'child-window';</script></body></html>"""


class PageHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = POPUP_PAGE if self.path.startswith("/popup.html") else TEST_PAGE
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def site():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), PageHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@needs_chromium
@pytest.mark.slow  # a real browser
def test_evaluate_returns_values_awaits_promises_and_raises_page_errors(site, browser):
    page = browser.new_page(site + "/")
    assert page.text("#title") == "harness page"
    assert page.evaluate("({a: [1, 2], b: 'x'})") == {"a": [1, 2], "b": "x"}
    assert page.evaluate("new Promise(r => setTimeout(() => r(42), 20))") == 42
    with pytest.raises(CDPError, match="no such thing"):
        page.evaluate("throw new Error('no such thing')")
    page.evaluate("0")  # a round trip so the load-time console event has been read
    assert any("deliberate console error" in error for error in page.errors)


@needs_chromium
@pytest.mark.slow  # a real browser
def test_wait_for_is_bounded_and_click_uses_real_mouse_events(site, browser):
    page = browser.new_page(site + "/")
    started = time.monotonic()
    with pytest.raises(CDPError, match="timed out"):
        page.wait_for("document.querySelector('#never')", timeout=0.3)
    assert time.monotonic() - started < 3
    page.click("#count")
    page.click("#count")
    assert page.wait_for("document.querySelector('#count').dataset.n") == "2"


@needs_chromium
@pytest.mark.slow  # a real browser
def test_a_popup_opened_by_a_click_can_be_found_and_driven(site, browser):
    page = browser.new_page(site + "/")
    page.evaluate("window.got = null; addEventListener('message', e => { window.got = e.data; })")
    page.click("#open")
    popup = browser.wait_for_page("popup.html?from=test", timeout=5)
    popup.wait_for("document.readyState === 'complete'")
    assert popup.evaluate("window.opener !== null") is True
    popup.click("#reply")
    assert page.wait_for("window.got", timeout=5) == "hello opener"
    with pytest.raises(CDPError, match="no page"):
        browser.wait_for_page("never-opened", timeout=0.3)


@needs_chromium
@pytest.mark.slow  # a real browser
def test_screenshot_writes_a_png(site, browser, tmp_path):
    page = browser.new_page(site + "/")
    path = page.screenshot(tmp_path / "shots" / "page.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_chromium
@pytest.mark.slow  # a real browser
def test_close_kills_chromium_and_removes_its_profile():
    chromium = Chromium.launch()
    profile, process = Path(chromium.profile), chromium.process
    assert (profile / "DevToolsActivePort").exists()
    chromium.close()
    assert process.poll() is not None
    assert not profile.exists()


def test_launch_reports_a_binary_that_exits(tmp_path):
    fake = tmp_path / "fake-chromium"
    fake.write_text("#!/bin/sh\necho 'cannot start' >&2\nexit 3\n")
    os.chmod(fake, 0o755)
    with pytest.raises(CDPError, match="exited with 3: cannot start"):
        Chromium.launch(str(fake), timeout=5)
