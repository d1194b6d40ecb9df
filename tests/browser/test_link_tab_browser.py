"""The Link tab in headless Chromium at Flex's CRM-panel width (400 px): a person links, hears that
it finished, reaches the tab by keyboard and reads the exchanges; a refused link shows where it
stopped; no token, verifier or secret is anywhere in the page."""
from __future__ import annotations

import json
import urllib.parse

import pytest

from sfdcflex.oauth_state import StateSigner, load_or_create_secret
from tests.browser.cdp import find_chromium, stop_process
from tests.browser.panel import (choose_user_and_press_enter, consent_popup, focused, live_text,
                                 open_panel, sign_in, start_demo)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    find_chromium() is None, reason="no chromium binary (install Debian's chromium or set $CHROMIUM)")]

ALICE, CAROL = "alice@sfdcflex.demo", "carol@sfdcflex.demo"
PARTIES = [["panel", "sfdcflex"], ["popup", "Salesforce authorize"], ["popup", "Salesforce consent"],
           ["popup", "sfdcflex"], ["sfdcflex", "Salesforce token endpoint"], ["sfdcflex", "Salesforce userinfo"],
           ["sfdcflex", "token store (JSON file)"]]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    process, panel_url = start_demo(folder)
    try:
        yield panel_url, folder
    finally:
        stop_process(process)


def steps(page) -> list[list[str]]:
    return page.evaluate("[...document.querySelectorAll('#link-steps .step')]"
                         ".map(li => [li.dataset.source, li.dataset.target])")


def test_a_link_is_read_out_and_its_steps_are_reached_by_keyboard_at_400_px(demo, browser):
    url, folder = demo
    page = open_panel(browser, url, 400)
    sign_in(page, ALICE)
    page.click("#connect")
    popup = consent_popup(browser)
    state = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(popup.evaluate("location.href")).query))["state"]
    choose_user_and_press_enter(popup, ALICE)
    page.wait_for("document.querySelector('#sfdc-status').dataset.state === 'linked'", timeout=15)
    page.wait_for("document.querySelector('#live').textContent.includes('Link tab')")
    assert live_text(page) == "Logged into Salesforce as Alice Johnson (alice@sfdcflex.demo). " \
                              "The Link tab shows the 7 steps of this link."

    page.evaluate("document.querySelector('#tab-request').focus()")
    page.press("ArrowRight")
    assert focused(page) == "tab-link"
    assert page.evaluate("[document.querySelector('#link-trace').hidden, "
                         "document.querySelector('#flow-request').hidden, "
                         "document.querySelector('#tab-link').getAttribute('aria-selected')]") == [False, True, "true"]
    page.wait_for("document.querySelectorAll('#link-steps .step').length === 7")
    assert steps(page) == PARTIES
    assert page.text("#link-summary") == f"Linked {ALICE}: 7 steps."
    assert page.evaluate("document.documentElement.scrollWidth") <= 400   # nothing wider than the panel
    page.press("Home")
    assert focused(page) == "tab-request" and page.evaluate("document.querySelector('#link-trace').hidden")

    html = page.evaluate("document.documentElement.outerHTML")
    stored = json.loads((folder / "tokens.json").read_text())["agents"][ALICE]
    signer = StateSigner(load_or_create_secret(folder / "state-secret"))   # the running demo's, read
    secrets = {"access token": stored["access_token"], "refresh token": stored["refresh_token"],
               "PKCE verifier": signer.code_verifier(signer.verify(state)), "client secret": "demo-client-secret"}
    for what, secret in secrets.items():
        assert secret not in html, f"the {what} is in the page"
    assert page.errors == []
    browser.close_page(page)


def test_carol_s_refused_link_shows_where_it_stopped(demo, browser):
    url, _ = demo
    page = open_panel(browser, url, 400)
    sign_in(page, CAROL)
    page.click("#connect")
    choose_user_and_press_enter(consent_popup(browser), "carol.ops@sfdcflex.demo")
    page.wait_for("!document.querySelector('#error').hidden", timeout=15)
    page.wait_for("document.querySelector('#live').textContent.startsWith('The Link tab')")   # said last
    assert live_text(page) == "The Link tab shows where it stopped: sfdcflex, identity_mismatch."
    assert page.evaluate("document.querySelector('#link-trace').dataset.state") == "refused"
    page.click("#tab-link")
    stopped = page.evaluate("[...document.querySelectorAll('#link-steps .step.stopped')]"
                            ".map(li => [li.dataset.target, li.dataset.status, li.querySelector('.step-stopped').textContent])")
    assert len(stopped) == 1 and stopped[0][:2] == ["sfdcflex", "403"]
    assert stopped[0][2].startswith("Stopped here: identity_mismatch: The Salesforce user carol.ops@sfdcflex.demo")
    assert ["sfdcflex", "Salesforce revoke"] in steps(page)
    assert page.errors == []
    browser.close_page(page)
