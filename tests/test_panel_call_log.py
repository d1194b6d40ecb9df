"""The demo panel in headless Chromium: choose among several matches, an email task, a Lead, Log call."""
from __future__ import annotations

import json
import urllib.request

import pytest

from cdp import Chromium, find_chromium, stop_process
from test_panel_browser import card_fields, connect_through_popup, hops, pick, sign_in, start_demo

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    find_chromium() is None, reason="no chromium binary (install Debian's chromium or set $CHROMIUM)")]

SHARED = "+442079460958"


def _log_state(page) -> str:
    return page.evaluate("document.querySelector('#log-status').dataset.state")


def save_log(page, notes: str) -> None:
    page.evaluate(f"document.querySelector('#log-notes').value = {json.dumps(notes)}")
    page.evaluate("document.querySelector('#log-status').dataset.state = 'idle'")
    page.click("#log-save")
    page.wait_for("['logged', 'error'].includes(document.querySelector('#log-status').dataset.state)")


def test_pick_a_candidate_then_log_the_call_twice(tmp_path):
    process, panel_url, _ = start_demo(tmp_path / "demo")
    try:
        with Chromium.launch() as browser:
            page = browser.new_page(panel_url)
            page.wait_for("document.querySelectorAll('#agent-select option[value]').length > 0")
            sign_in(page, "alice@sfdcflex.demo")
            connect_through_popup(browser, page, "alice@sfdcflex.demo")

            pick(page, SHARED, "found")
            assert page.evaluate("document.querySelector('#candidates').hidden") is False
            options = page.evaluate(
                "[...document.querySelectorAll('#candidate-select option')].map(o => o.value)")
            assert len(options) == 2
            first = card_fields(page)["cust_name"]
            page.evaluate("(() => { const s = document.querySelector('#candidate-select'); "
                          f"s.value = {json.dumps(options[1])}; s.dispatchEvent(new Event('change')); }})()")
            page.wait_for("document.querySelector('[data-field=cust_name]').dataset.value "
                          f"!== {json.dumps(first)}")
            chosen = card_fields(page)["cust_name"]
            assert {first, chosen} == {"Emily Clarke", "Oliver Bennett"}

            save_log(page, "Wants a call back on Friday")
            assert _log_state(page) == "logged", page.text("#error")
            assert page.text("#log-status").startswith("Logged to Salesforce.")
            task_url = page.evaluate("document.querySelector('#log-status a').href")
            assert "/lightning/r/Task/00T" in task_url
            assert any(name == "sfdc-write" for name, _ in hops(page))
            save_log(page, "Call back moved to Monday")
            assert "updated" in page.text("#log-status")
            record = card_fields(page)["cust_record_url"]
            with urllib.request.urlopen(record, timeout=5) as answer:  # the stand-in's record page
                shown = answer.read().decode()
            assert "Call back moved to Monday" in shown and "Wants a call back" not in shown

            pick(page, "priya.natarajan@acme.example", "found")
            assert card_fields(page)["cust_name"] == "Priya Natarajan"
            pick(page, "+13035550142", "found")
            assert card_fields(page)["cust_acct_name"] == "Hopper Compilers Inc"
            assert page.text("#contact-card a[data-field=cust_record_url]") == "Open the Lead in Salesforce"
            assert page.errors == []
    finally:
        stop_process(process)
