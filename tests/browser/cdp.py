"""A small Chrome DevTools Protocol client and headless Chromium launcher, standard library only.

The tests drive a real browser with it: `Chromium.launch()` starts headless Chromium on a
free DevTools port, `new_page(url)` opens a tab, and `Page` evaluates JavaScript, waits for
conditions, clicks and takes screenshots. Popups opened with `window.open` are found with
`Chromium.wait_for_page(url_contains)`. Every wait is bounded. Each page is driven over its own
WebSocket (websocket.py, the RFC 6455 client).
"""
from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.browser.websocket import WebSocket

# Input.dispatchKeyEvent needs the DOM key, its code, the Windows key code and the text typed.
KEYS = {"Enter": ("Enter", 13, "\r"), "Escape": ("Escape", 27, ""), "Tab": ("Tab", 9, ""),
        "ArrowLeft": ("ArrowLeft", 37, ""), "ArrowRight": ("ArrowRight", 39, ""), "Home": ("Home", 36, ""),
        "End": ("End", 35, "")}

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-quic", "--remote-debugging-port=0", "--window-size=1280,900",
)


class CDPError(Exception):
    """A DevTools command failed, a page threw, or a bounded wait ran out."""


def find_chromium() -> str | None:
    """Return the path of a Chromium or Chrome binary, or None when none is installed."""
    candidates = [os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser",
                  "google-chrome", "google-chrome-stable"]
    for name in candidates:
        found = name and shutil.which(name)
        if found:
            return found
    return None


class Page:
    """One browser tab driven over its own DevTools WebSocket."""

    def __init__(self, target: dict, timeout: float = 10.0) -> None:
        self.target_id = target["id"]
        self.ws = WebSocket.connect(target["webSocketDebuggerUrl"], timeout)
        self.ids = itertools.count(1)
        self.errors: list[str] = []
        self.network_errors: list[str] = []
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def send(self, method: str, params: dict | None = None, timeout: float = 10.0) -> dict:
        """Send one command and return its result, noting the error events that arrive meanwhile."""
        command_id = next(self.ids)
        self.ws.send_text(json.dumps({"id": command_id, "method": method,
                                      "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.receive_text(deadline))
            if message.get("id") == command_id:
                if "error" in message:
                    raise CDPError(f"{method}: {message['error'].get('message')}")
                return message.get("result", {})
            self.record_event(message)

    def record_event(self, message: dict) -> None:
        """Note script and console errors as text in `errors`; other events are dropped."""
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            exception = details.get("exception", {})
            self.errors.append(exception.get("description") or details.get("text", ""))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append(" ".join(str(arg.get("value", arg.get("description", "")))
                                        for arg in params.get("args", [])))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            text = f"{entry.get('text', '')} ({entry.get('url', '')})"
            # Chromium logs every 4xx/5xx answer as a "network" error; an app that shows a
            # 404 no_match in words is working, so those are kept apart from script errors.
            target = self.network_errors if entry.get("source") == "network" else self.errors
            target.append(text)

    def goto(self, url: str, timeout: float = 10.0) -> None:
        """Navigate to `url` and return once the new document has loaded."""
        # Page.navigate answers when the navigation commits, so the readyState polled
        # below belongs to the new document, not to the one being left.
        result = self.send("Page.navigate", {"url": url}, timeout)
        if result.get("errorText"):
            raise CDPError(f"could not open {url}: {result['errorText']}")
        self.wait_for("document.readyState === 'complete'", timeout)

    def evaluate(self, expression: str, timeout: float = 10.0):
        """Evaluate JavaScript (awaiting a promise) and return its value, or raise its error."""
        result = self.send("Runtime.evaluate", {
            "expression": expression, "returnByValue": True, "awaitPromise": True}, timeout)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(f"JavaScript error: {text}")
        return result.get("result", {}).get("value")

    def wait_for(self, predicate: str, timeout: float = 10.0, interval: float = 0.02):
        """Poll a JavaScript expression until it is truthy and return its value, or raise."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(predicate, timeout=max(1.0, deadline - time.monotonic()))
            except CDPError as exc:
                # A navigation replaces the page's JavaScript context mid-poll; ask again.
                if "context" not in str(exc) or str(exc).startswith("JavaScript error"):
                    raise
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise CDPError(f"timed out after {timeout}s waiting for: {predicate}")
            time.sleep(interval)

    def click(self, selector: str, timeout: float = 10.0) -> None:
        """Click the centre of the first element matching `selector` with real mouse events.

        Real input events carry a user gesture, so window.open from the click is not
        treated as an unrequested popup.
        """
        box = self.wait_for(f"""(() => {{
            const el = document.querySelector({json.dumps(selector)});
            if (!el || el.disabled) return null;
            el.scrollIntoView({{block: "center"}});
            // A link that wraps has one box per line; the middle of their union may be neither.
            const r = el.getClientRects()[0] || el.getBoundingClientRect();
            return r.width && r.height ? {{x: r.left + r.width / 2, y: r.top + r.height / 2}} : null;
        }})()""", timeout)
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {
                "type": kind, "x": box["x"], "y": box["y"], "button": "left", "clickCount": 1})

    def press(self, key: str) -> None:
        """Press and release one key (Enter, Escape, Tab) in the focused element, as a person would."""
        code, key_code, text = KEYS[key]
        down = {"type": "keyDown", "key": key, "code": code, "windowsVirtualKeyCode": key_code}
        if text:
            down["text"] = text
        self.send("Input.dispatchKeyEvent", down)
        self.send("Input.dispatchKeyEvent", {"type": "keyUp", "key": key, "code": code,
                                             "windowsVirtualKeyCode": key_code})

    def set_viewport(self, width: int, height: int) -> None:
        """Lay the page out as if its window were `width` x `height` CSS pixels."""
        self.send("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def text(self, selector: str) -> str | None:
        """Return the trimmed text of the first element matching `selector`, or None."""
        return self.evaluate(f"document.querySelector({json.dumps(selector)})"
                             "?.textContent.trim() ?? null")

    def screenshot(self, path: str | Path, *, full_page: bool = True) -> Path:
        """Save a PNG of the page's full content (or only what the viewport shows) to `path`."""
        if full_page:
            metrics = self.send("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            params = {"format": "png", "captureBeyondViewport": True,
                      "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                               "scale": 1}}
        else:
            params = {"format": "png"}
        data = self.send("Page.captureScreenshot", params, timeout=30)["data"]
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(data))
        return target

    def close(self) -> None:
        """Close this page's WebSocket (the tab itself stays until the browser ends)."""
        self.ws.close()


class Chromium:
    """A headless Chromium process with a fresh profile, killed and cleaned up on close."""

    def __init__(self, process: subprocess.Popen, profile: str, port: int) -> None:
        self.process = process
        self.profile = profile
        self.port = port
        self.pages: list[Page] = []

    @classmethod
    def launch(cls, binary: str | None = None, timeout: float = 15.0) -> Chromium:
        """Start headless Chromium and return once its DevTools port is known."""
        binary = binary or find_chromium()
        if binary is None:
            raise CDPError("no Chromium binary found")
        profile = tempfile.mkdtemp(prefix="sfdcflex-chromium-")
        # stderr goes to a file: a pipe nobody reads would stall Chromium once it fills.
        with open(Path(profile) / "chromium-stderr.log", "wb") as log:
            process = subprocess.Popen(
                [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                start_new_session=True)   # its helper processes in a group of their own
        try:
            port = wait_for_devtools_port(Path(profile), process, timeout)
        except BaseException:
            stop_process(process)
            shutil.rmtree(profile, ignore_errors=True)
            raise
        return cls(process, profile, port)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def http_json(self, path: str, method: str = "GET"):
        """Call one of the DevTools HTTP endpoints (/json/...) and return its JSON."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def new_page(self, url: str = "about:blank") -> Page:
        """Open a new tab on `url` and return it once the document has loaded."""
        # Chromium 111+ accepts only PUT on /json/new, so a stray GET cannot open tabs.
        page = self.attach(self.http_json("/json/new?about:blank", "PUT"))
        page.goto(url)
        return page

    def attach(self, target: dict) -> Page:
        """Connect to an existing tab described by a /json/list entry."""
        page = Page(target)
        self.pages.append(page)
        return page

    def wait_for_page(self, url_contains: str, timeout: float = 10.0) -> Page:
        """Wait for a tab (e.g. a window.open popup) whose URL contains `url_contains`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for target in self.http_json("/json/list"):
                if target.get("type") == "page" and url_contains in target.get("url", ""):
                    return self.attach(target)
            time.sleep(0.05)
        raise CDPError(f"no page with {url_contains!r} in its URL after {timeout}s")

    def close_page(self, page: Page) -> None:
        """Close one tab and its connection."""
        page.close()
        self.pages.remove(page)
        urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/close/{page.target_id}",
                               timeout=10).close()

    def close(self) -> None:
        """Close every page connection, kill Chromium and delete its profile folder."""
        for page in self.pages:
            page.close()
        # The whole group at once, helpers (zygote, GPU, crash handler) too, which could otherwise
        # outlive the browser for a moment and write into the profile while it is removed: the
        # profile is thrown away, so an orderly shutdown (some 0.3 s) would buy nothing.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=5)
        deadline = time.monotonic() + 5
        while Path(self.profile).exists() and time.monotonic() < deadline:
            shutil.rmtree(self.profile, ignore_errors=True)
            if Path(self.profile).exists():
                time.sleep(0.05)


def wait_for_devtools_port(profile: Path, process: subprocess.Popen, timeout: float) -> int:
    """Read the port Chromium chose from DevToolsActivePort (its first line), bounded."""
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = profile / "chromium-stderr.log"
            detail = log.read_text(errors="replace")[-800:] if log.exists() else ""
            raise CDPError(f"Chromium exited with {process.returncode}: {detail}")
        try:
            first_line = marker.read_text().splitlines()[0]
            return int(first_line)
        except (FileNotFoundError, IndexError, ValueError):
            time.sleep(0.05)
    raise CDPError(f"Chromium wrote no DevToolsActivePort within {timeout}s")


def stop_process(process: subprocess.Popen) -> None:
    """Terminate a child process, kill it if it lingers, and reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
