"""What the agent-panel browser tests share: the steps a person takes, and reading what they see."""
from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.browser.cdp import Chromium, Page, stop_process

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
BANNER = re.compile(r"Agent panel: (http://127\.0\.0\.1:\d+/)")

# What the Salesforce card says in each state (panel.js, LINK_WORDS).
NOT_LINKED = "Not connected to Salesforce. Press Connect Salesforce to link your Salesforce user."
WAITING = "Waiting for you to log in to Salesforce in the pop-up window…"
DISCONNECTED = "Disconnected from Salesforce. Press Connect Salesforce to link again."
SIGNED_OUT = "Sign in as an agent first."
CHECKING = "Checking the Salesforce link…"
UNKNOWN = "The Salesforce link could not be checked. Sign in again to retry."
NOT_LINKED_LOOKUP = "Salesforce is not connected for this agent. Press Connect Salesforce first."


def open_panel(browser: Chromium, url: str, width: int = 1280, height: int = 800) -> Page:
    """A new tab `width` x `height` on the panel, once its agents (or an error) have loaded."""
    page = browser.new_page()
    page.set_viewport(width, height)
    page.goto(url)
    page.wait_for("document.querySelectorAll('#agent-select option[value]').length > 0 || "
                  "!document.querySelector('#error').hidden")
    return page


def sign_in(page: Page, realm_user_id: str) -> None:
    page.evaluate(f"document.querySelector('#agent-select').value = {json.dumps(realm_user_id)}")
    page.click("#sign-in")
    page.wait_for("!document.querySelector('#error').hidden || "
                  f"document.querySelector('#agent-status').dataset.agent === {json.dumps(realm_user_id)}"
                  " && !['checking', 'signed_out'].includes(document.querySelector('#sfdc-status').dataset.state)")
    assert page.text("#error") == "", page.text("#error")


def pick(page: Page, caller: str, state: str) -> None:
    page.click(f'#task-list .task[data-caller="{caller}"]')
    page.wait_for(f"document.querySelector('#contact-message').dataset.state === {json.dumps(state)}")


def link_state(page: Page) -> tuple[str, str]:
    """The Salesforce card's state and its words."""
    return page.evaluate("document.querySelector('#sfdc-status').dataset.state"), page.text("#sfdc-status")


def live_text(page: Page) -> str:
    """What the polite live region last announced (a repeat carries a trailing no-break space)."""
    return page.evaluate("document.querySelector('#live[aria-live=polite]').textContent").rstrip("\u00a0")


def focused(page: Page) -> str:
    return page.evaluate("document.activeElement.id || document.activeElement.tagName")


def card_in_view(page: Page) -> bool:
    """True when the caller card's heading and its first lines are inside the viewport."""
    return page.evaluate("""(() => {
        const box = document.querySelector('#contact').getBoundingClientRect();
        return box.top >= 0 && box.top + Math.min(box.height, 200) <= window.innerHeight;
    })()""")


def card_fields(page: Page) -> dict:
    return page.evaluate("Object.fromEntries([...document.querySelectorAll('#contact-card [data-field]')]"
                         ".map(el => [el.dataset.field, el.dataset.value]))")


def hops(page: Page) -> list[list]:
    """Each hop of the data-flow card as [name, label, detail]."""
    return page.evaluate("[...document.querySelectorAll('#flow-hops .hop')]"
                         ".map(li => [li.dataset.hop, li.dataset.label, li.dataset.detail])")


def badge(page: Page) -> str | None:
    """The cache badge's words, or None when it is hidden."""
    return page.evaluate("(b => b.hidden ? null : b.textContent)(document.querySelector('#cache-badge'))")


def start_demo(demo_dir: Path) -> tuple[subprocess.Popen, str]:
    """Start `run.py --demo` on a free port; return it and the panel URL it printed."""
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
            return process, match.group(1)
    stop_process(process)
    raise AssertionError("run.py --demo printed no 'Agent panel:' line within 15 s:\n" + "".join(seen))


def consent_popup(browser: Chromium) -> Page:
    """The Salesforce stand-in's login/consent page that Connect Salesforce opened."""
    popup = browser.wait_for_page("/services/oauth2/authorize", timeout=10)
    popup.wait_for("document.readyState === 'complete' && !!document.querySelector('form')")
    return popup


def choose_user_and_press_enter(popup: Page, sfdc_username: str) -> None:
    """Click the user's radio button, then press Enter: the form's default button submits."""
    popup.click(f'input[type=radio][value="{sfdc_username}"]')
    assert popup.evaluate("document.activeElement.value") == sfdc_username
    popup.press("Enter")


def connect_with_enter(browser: Chromium, page: Page, sfdc_username: str) -> None:
    """Press Connect Salesforce, choose the user and press Enter; wait for the panel to hear back."""
    page.click("#connect")
    choose_user_and_press_enter(consent_popup(browser), sfdc_username)
    page.wait_for("document.querySelector('#sfdc-status').dataset.state === 'linked' || "
                  "!document.querySelector('#error').hidden", timeout=15)
