"""The demo as a person uses it, in headless Chromium at Flex's CRM-panel width and on a wide screen.

One `python run.py --demo` and one browser serve the whole module. Each width signs in its own
agent (Alice at 400 px, Bob at 1280 px), links Salesforce by pressing Enter on the consent page,
looks up callers, opens the record page, disconnects, and presses Escape on the consent page;
at every step it checks the words on screen, what the live region announced, and where focus is.
"""
from __future__ import annotations

import json
import os
import re

import pytest

from tests.browser.cdp import find_chromium, stop_process
from tests.browser.panel import (DISCONNECTED, NOT_LINKED, NOT_LINKED_LOOKUP, SCREENSHOTS, SIGNED_OUT,
                           WAITING, badge, card_fields, card_in_view, connect_with_enter,
                           consent_popup, focused, hops, link_state, live_text, open_panel,
                           pick, sign_in, start_demo)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    find_chromium() is None, reason="no chromium binary (install Debian's chromium or set $CHROMIUM)")]

WIDTHS = {"narrow": 400, "wide": 1280}
AGENTS = {"narrow": ("alice@sfdcflex.demo", "Alice Johnson"), "wide": ("bob@sfdcflex.demo", "Bob Martinez")}
KNOWN, UNKNOWN_CALLER = "+12125550103", "+13125550199"
RAW_HOP_NAME = re.compile(r"^[a-z]+-[a-z]+$")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    process, panel_url = start_demo(tmp_path_factory.mktemp("demo"))
    try:
        yield panel_url
    finally:
        stop_process(process)


def expected_card(caller: str) -> dict:
    """The card the panel must show for `caller`, computed from the demo data set."""
    from sfdcflex.demo.standins import demo_data

    national = caller[-10:]
    for name, account, title, phone, mobile, _ in demo_data.CONTACTS:
        numbers = ["".join(ch for ch in number if ch.isdigit()) for number in (phone, mobile) if number]
        if any(number.endswith(national) for number in numbers):
            acct_name, acct_type, acct_num, sla, priority = demo_data.ACCOUNTS[account]
            return {"cust_name": name, "cust_title": title, "cust_acct_name": acct_name,
                    "cust_acct_type": acct_type, "cust_acct_num": acct_num,
                    "cust_acct_sla": sla, "cust_acct_priority": priority}
    raise AssertionError(f"no demo contact for {caller}")


def assert_card_answered(page, announcement: str) -> None:
    """The caller card is on screen, its heading has focus, and the result was announced."""
    assert card_in_view(page)
    assert focused(page) == "contact-title"
    assert live_text(page) == announcement


@pytest.mark.parametrize("width", ["narrow", "wide"])
def test_a_person_links_looks_up_opens_the_record_and_disconnects(demo, browser, width):
    realm_user_id, name = AGENTS[width]
    page = open_panel(browser, demo, WIDTHS[width])
    assert page.text("#mode-banner").startswith("Demo mode: Flex, Salesforce and Twilio are stand-ins")
    assert link_state(page) == ("signed_out", SIGNED_OUT)

    sign_in(page, realm_user_id)
    assert link_state(page) == ("not_linked", NOT_LINKED)
    assert live_text(page) == f"Signed in as {name} ({realm_user_id}). {NOT_LINKED}"
    assert badge(page) is None  # get-user's answer says nothing about the contact cache
    pick(page, KNOWN, "not_linked")
    assert_card_answered(page, NOT_LINKED_LOOKUP)

    page.click("#connect")
    page.wait_for("document.querySelector('#sfdc-status').dataset.state === 'waiting'")
    assert link_state(page) == ("waiting", WAITING)
    popup = consent_popup(browser)
    popup.click(f'input[type=radio][value="{realm_user_id}"]')
    popup.press("Enter")  # Allow is the form's default button
    page.wait_for("document.querySelector('#sfdc-status').dataset.state === 'linked'", timeout=15)
    linked = f"Logged into Salesforce as {name} ({realm_user_id})."
    assert link_state(page) == ("linked", linked)
    assert focused(page) == "disconnect"  # Connect is gone; focus moved to what replaced it
    assert live_text(page) == f"{linked} The Link tab shows the 7 steps of this link."

    look_up_a_caller(page, width)
    open_the_record_page(browser, page, name)

    page.click("#disconnect")
    page.wait_for("document.querySelector('#sfdc-status').dataset.state === 'disconnected'")
    assert link_state(page) == ("disconnected", DISCONNECTED)
    assert focused(page) == "connect"
    assert live_text(page) == DISCONNECTED
    assert ["sfdc-revoke", "Salesforce sign-out", "tokens revoked and deleted"] in hops(page)

    page.click("#connect")
    consent_popup(browser).press("Escape")  # Escape presses Deny
    page.wait_for("!document.querySelector('#error').hidden")
    assert page.text("#error") == ("Salesforce was not connected: you pressed Deny on the Salesforce page, "
                                   "so nothing was linked. Press Connect Salesforce to try again.")
    page.wait_for("document.querySelector('#sfdc-status').dataset.state === 'not_linked'")
    assert link_state(page) == ("not_linked", NOT_LINKED)
    assert focused(page) == "connect"
    assert page.errors == []
    # Chromium logs every non-2xx fetch itself; ours are the normal 404 answers and nothing else.
    assert all("status of 404" in line for line in page.network_errors), page.network_errors
    browser.close_page(page)


def look_up_a_caller(page, width: str) -> None:
    pick(page, KNOWN, "found")
    card = expected_card(KNOWN)
    fields = card_fields(page)
    assert {k: v for k, v in fields.items() if k != "cust_record_url"} == card
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/lightning/r/Contact/003\w{15}/view", fields["cust_record_url"])
    assert_card_answered(page, f"Caller found: {card['cust_name']}, {card['cust_title']}, {card['cust_acct_name']}.")
    assert badge(page) == "cache miss"
    labels = {name: (label, detail) for name, label, detail in hops(page)}
    assert labels["sfdc-search"] == ("Salesforce search (SOSL)", "")
    assert labels["cache"] == ("Answer cache", "miss")
    assert labels["total"] == ("Total on the server", "")
    assert not any(RAW_HOP_NAME.match(label) for label, _ in labels.values())
    if os.environ.get("SFDCFLEX_SCREENSHOT") == "1":
        # Narrow: what the agent sees in Flex's panel right after picking the task.
        # The pointer moves off the task list first, so no row shows a hover border.
        page.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": 0, "y": 0})
        page.screenshot(SCREENSHOTS / f"panel-{width}.png", full_page=width == "wide")

    pick(page, UNKNOWN_CALLER, "no_match")
    assert_card_answered(page, f"No matching contact in Salesforce for {UNKNOWN_CALLER}.")
    pick(page, KNOWN, "found")
    assert badge(page) == "cache hit — no Salesforce call"
    assert not any(hop.startswith("sfdc-") for hop, _, _ in hops(page))
    assert live_text(page).startswith(f"Caller found: {card['cust_name']}")


def open_the_record_page(browser, page, agent_name: str) -> None:
    """The record link opens the Contact's page in the Salesforce stand-in, for this browser's user."""
    contact = card_fields(page)["cust_name"]
    page.click('#contact-card a[data-field="cust_record_url"]')
    record = browser.wait_for_page("/lightning/r/Contact/")
    record.wait_for("document.readyState === 'complete' && !!document.querySelector('h1')")
    assert record.text("h1") == contact
    assert f"Logged in as {agent_name}" in record.text("nav.session")
    record.click("dl.fields a")  # the Account, with its contacts
    record.wait_for("location.pathname.startsWith('/lightning/r/Account/') && "
                    "document.readyState === 'complete'")
    assert contact in record.text("ul.records")
    assert record.errors == []
    browser.close_page(record)


def test_carol_is_refused_in_words_she_can_act_on(demo, browser):
    page = open_panel(browser, demo, WIDTHS["wide"])
    sign_in(page, "alice@sfdcflex.demo")
    pick(page, UNKNOWN_CALLER, "not_linked")
    sign_in(page, "carol@sfdcflex.demo")
    # Nothing of Alice's stays: no selected task, Carol's own link state.
    assert page.evaluate("document.querySelectorAll('.task[aria-pressed=true]').length") == 0
    assert link_state(page) == ("not_linked", NOT_LINKED)

    connect_with_enter(browser, page, "carol.ops@sfdcflex.demo")
    refusal = page.text("#error")
    assert refusal == (
        "Salesforce was not connected: The Salesforce user carol.ops@sfdcflex.demo is not the Flex user "
        "carol@sfdcflex.demo. In this demo Carol Davis has no Salesforce user named carol@sfdcflex.demo, "
        "so the link is refused on purpose, to show how a mismatch is handled. "
        "Sign in as Alice Johnson or Bob Martinez to connect.")
    page.wait_for("document.querySelector('#sfdc-status').dataset.state === 'not_linked'")
    assert focused(page) == "connect"
    assert page.errors == []
    browser.close_page(page)


def test_the_demo_panel_as_a_flex_plugin_on_another_origin(demo, browser):
    """The panel on FLEX_INSTANCE_URL (localhost) calls the functions on 127.0.0.1: CORS for real."""
    flex_origin = demo.replace("127.0.0.1", "localhost").rstrip("/")
    page = open_panel(browser, f"{flex_origin}/?functions={demo.rstrip('/')}")
    assert page.evaluate("location.origin") == flex_origin
    sign_in(page, "bob@sfdcflex.demo")
    if link_state(page)[0] == "linked":  # left linked by a test that failed half-way
        page.click("#disconnect")
        page.wait_for("document.querySelector('#sfdc-status').dataset.state === 'disconnected'")
    connect_with_enter(browser, page, "bob@sfdcflex.demo")
    assert link_state(page) == ("linked", "Logged into Salesforce as Bob Martinez (bob@sfdcflex.demo).")
    pick(page, "+14155550101", "found")
    assert card_fields(page)["cust_name"] == "Jane Cooper"  # the newer of two records
    assert any(name == "sfdc-search" for name, _, _ in hops(page))  # Server-Timing exposed cross-origin
    assert page.errors == []
    browser.close_page(page)


SHARED = "+442079460958"  # Globex's switchboard: two contacts share it
LEAD = "+13035550142"
EMAIL = "priya.natarajan@acme.example"


def choose_candidate(page, contact_id: str) -> None:
    """Pick another match in the card's list, as the keyboard does: focus, change."""
    before = card_fields(page)["cust_name"]
    page.evaluate("(s => { s.focus(); s.value = " + json.dumps(contact_id) + "; "
                  "s.dispatchEvent(new Event('change')); })(document.querySelector('#candidate-select'))")
    page.wait_for(f"document.querySelector('[data-field=cust_name]').dataset.value !== {json.dumps(before)}")


def save_log(page, notes: str) -> None:
    page.evaluate(f"document.querySelector('#log-notes').value = {json.dumps(notes)}")
    page.evaluate("document.querySelector('#log-status').dataset.state = 'idle'")
    page.click("#log-save")
    page.wait_for("['logged', 'error'].includes(document.querySelector('#log-status').dataset.state)")


def test_a_person_picks_among_several_matches_and_logs_the_call(demo, browser):
    """At Flex's panel width: the picker, Log call twice, the record page's calls, email and Lead tasks."""
    page = open_panel(browser, demo, WIDTHS["narrow"])
    sign_in(page, "alice@sfdcflex.demo")
    if link_state(page)[0] != "linked":
        connect_with_enter(browser, page, "alice@sfdcflex.demo")

    pick(page, SHARED, "found")
    first = card_fields(page)
    assert page.evaluate("document.querySelector('#candidates').hidden") is False
    options = page.evaluate("[...document.querySelectorAll('#candidate-select option')].map(o => [o.value, o.text])")
    assert [text for _, text in options] == [f"{first['cust_name']} (Contact, Globex Europe Ltd)",
                                             "Emily Clarke (Contact, Globex Europe Ltd)"
                                             if first["cust_name"] == "Oliver Bennett"
                                             else "Oliver Bennett (Contact, Globex Europe Ltd)"]
    assert_card_answered(page, f"Caller found: {first['cust_name']}, {first['cust_title']}, Globex Europe Ltd. "
                               "2 records match; choose another in the list below.")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scroll

    choose_candidate(page, options[1][0])
    chosen = card_fields(page)
    assert {first["cust_name"], chosen["cust_name"]} == {"Emily Clarke", "Oliver Bennett"}
    assert focused(page) == "candidate-select"  # choosing is not a change of context
    assert live_text(page) == f"Showing {chosen['cust_name']}, {chosen['cust_title']}, Globex Europe Ltd."

    save_log(page, "Wants a call back on Friday")
    assert page.evaluate("document.querySelector('#log-status').dataset.state") == "logged", page.text("#log-status")
    assert page.text("#log-status") == "Logged to Salesforce. Open the Task in Salesforce"
    assert re.search(r"/lightning/r/Task/00T\w{15}/view$", page.evaluate("document.querySelector('#log-status a').href"))
    assert live_text(page) == "Logged to Salesforce."
    assert focused(page) == "log-save"
    labels = hops(page)
    assert ["sfdc-write", "Salesforce save", "the call, as a new Task"] in labels
    assert ["sfdc-query", "Salesforce query (SOQL)", "was this call logged before?"] in labels
    assert not any(RAW_HOP_NAME.match(label) for _, label, _ in labels)
    assert badge(page) is None

    save_log(page, "Call back moved to Monday")
    updated = "Logged to Salesforce: the earlier log of this call was updated."
    assert page.text("#log-status").startswith(updated) and live_text(page) == updated
    assert ["sfdc-write", "Salesforce save", "the call's Task, updated"] in hops(page)
    # The Contact's record page, in this browser's Salesforce session, lists the call once.
    record = browser.new_page(chosen["cust_record_url"])
    record.wait_for("document.readyState === 'complete' && !!document.querySelector('h1')")
    assert record.text("h1") == chosen["cust_name"]
    shown = record.text("main")
    assert "Activity history (1)" in shown and "Call back moved to Monday" in shown
    assert "Wants a call back" not in shown
    browser.close_page(record)

    pick(page, EMAIL, "found")
    assert card_fields(page)["cust_name"] == "Priya Natarajan"
    # The address wraps inside its column at 400 px instead of running over the task's label.
    assert page.evaluate(f"""(c => c.scrollWidth <= c.clientWidth)
        (document.querySelector('.task[data-caller="{EMAIL}"] .task-caller'))""")
    pick(page, LEAD, "found")
    assert card_fields(page)["cust_acct_name"] == "Hopper Compilers Inc"
    assert page.text("#contact-account-term") == "Company"
    assert page.text("#contact-card a[data-field=cust_record_url]") == "Open the Lead in Salesforce"
    assert_card_answered(page, "Caller found: Grace Hopper, Founder, Hopper Compilers Inc (a Lead).")
    assert page.text("#log-status") == ""  # a new caller: no earlier log result shown

    # Disconnected in another tab meanwhile: Save says why it did not save, and the link state.
    other = open_panel(browser, demo, WIDTHS["wide"])
    sign_in(other, "alice@sfdcflex.demo")
    other.click("#disconnect")
    other.wait_for("document.querySelector('#sfdc-status').dataset.state === 'disconnected'")
    browser.close_page(other)
    save_log(page, "Interested in a demo")
    assert page.evaluate("[document.querySelector('#log-status').dataset.state, "
                         "document.querySelector('#log-status').dataset.code]") == ["error", "not_linked"]
    assert page.text("#log-status").startswith("Not saved: ") and live_text(page) == page.text("#log-status")
    assert link_state(page) == ("not_linked", NOT_LINKED)
    assert focused(page) == "log-save"
    assert page.errors == []
    browser.close_page(page)
