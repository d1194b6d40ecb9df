"""The browser harness: its RFC 6455 WebSocket client, and CDP against a page from http.server."""
from __future__ import annotations

import http.server
import os
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from tests.browser.cdp import (OPCODE_CLOSE, OPCODE_CONTINUATION, OPCODE_PING, OPCODE_PONG,
                 OPCODE_TEXT, CDPError, Chromium, WebSocket, WebSocketClosed, accept_key,
                 encode_frame, find_chromium)

needs_chromium = pytest.mark.skipif(find_chromium() is None,
                                    reason="no chromium binary (install Debian's chromium or set $CHROMIUM)")


# ---- the WebSocket client against a scripted one-connection server ----

class ScriptedServer:
    """Accepts one WebSocket connection on port 0 and runs `script(conn, read_frame)` on it."""

    def __init__(self, script, accept=accept_key) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"ws://127.0.0.1:{self.listener.getsockname()[1]}/devtools/page/x"
        self.script, self.accept = script, accept
        self.received: list[tuple[int, bool, bytes]] = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        conn, _ = self.listener.accept()
        conn.settimeout(5)
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(4096)
            key = next(line.split(":", 1)[1].strip() for line in head.decode().split("\r\n")
                       if line.lower().startswith("sec-websocket-key:"))
            conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Accept: {self.accept(key)}\r\n\r\n"
                          ).encode())
            self.script(conn, lambda: self.read_frame(conn))

    def read_frame(self, conn: socket.socket) -> bytes:
        def exact(n: int) -> bytes:
            data = b""
            while len(data) < n:
                data += conn.recv(n - len(data))
            return data
        first, second = exact(2)
        size = second & 0x7F
        size = struct.unpack("!H", exact(2))[0] if size == 126 else (
            struct.unpack("!Q", exact(8))[0] if size == 127 else size)
        key = exact(4) if second & 0x80 else b""
        payload = exact(size)
        if key:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        self.received.append((first & 0x0F, bool(second & 0x80), payload))
        return payload

    def close(self) -> None:
        self.thread.join(timeout=5)
        self.listener.close()


def test_client_frames_are_masked_and_long_messages_round_trip():
    long_text = "x" * 70_000  # needs the 64-bit length form
    medium_text = "é" * 200  # 400 bytes: the 16-bit length form

    def echo_twice(conn, read_frame):
        for _ in range(2):
            payload = read_frame()
            conn.sendall(encode_frame(OPCODE_TEXT, payload, mask=False))

    server = ScriptedServer(echo_twice)
    ws = WebSocket.connect(server.url, timeout=5)
    try:
        for text in (medium_text, long_text):
            ws.send_text(text)
            assert ws.receive_text(time.monotonic() + 5) == text
    finally:
        ws.close()
        server.close()
    opcodes_and_masks = [(opcode, masked) for opcode, masked, _ in server.received]
    assert opcodes_and_masks == [(OPCODE_TEXT, True), (OPCODE_TEXT, True)]


def test_fragments_are_joined_and_pings_answered_with_the_same_payload():
    def fragmented_with_ping(conn, read_frame):
        conn.sendall(encode_frame(OPCODE_TEXT, b'{"id": ', fin=False, mask=False))
        conn.sendall(encode_frame(OPCODE_PING, b"are-you-there", mask=False))
        conn.sendall(encode_frame(OPCODE_CONTINUATION, b"1, ", fin=False, mask=False))
        conn.sendall(encode_frame(OPCODE_CONTINUATION, b'"ok": true}', mask=False))
        read_frame()  # the pong
        conn.sendall(encode_frame(OPCODE_CLOSE, struct.pack("!H", 1001), mask=False))
        read_frame()  # the close echo

    server = ScriptedServer(fragmented_with_ping)
    ws = WebSocket.connect(server.url, timeout=5)
    try:
        assert ws.receive_text(time.monotonic() + 5) == '{"id": 1, "ok": true}'
        with pytest.raises(WebSocketClosed):
            ws.receive_text(time.monotonic() + 5)
    finally:
        ws.close()
        server.close()
    assert server.received[0] == (OPCODE_PONG, True, b"are-you-there")
    assert server.received[1] == (OPCODE_CLOSE, True, struct.pack("!H", 1001))


def test_a_wrong_accept_key_is_refused():
    server = ScriptedServer(lambda conn, read_frame: None, accept=lambda key: accept_key(key + "x"))
    try:
        with pytest.raises(CDPError, match="Sec-WebSocket-Accept"):
            WebSocket.connect(server.url, timeout=5)
    finally:
        server.close()


def test_accept_key_matches_the_rfc_example():
    # RFC 6455 §1.3 works this exact example.
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


# ---- CDP against a tiny page served by http.server ----

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
