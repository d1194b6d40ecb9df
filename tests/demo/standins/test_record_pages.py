"""The Salesforce stand-in's pages for a person, over real HTTP: login, home, record pages, consent."""
from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from sfdcflex.demo.standins import SalesforceStandIn
from sfdcflex.demo.standins.base import Request
from sfdcflex.demo.standins.record_pages import SESSION_COOKIE, BrowserSessions

from tests.support.record_pages import log_in, page
from tests.support.standins import authorize_url, call, query_of


class Buttons(HTMLParser):
    """The submit buttons of a page, in document order, with their attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.buttons: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "button":
            self.buttons.append(dict(attrs))


@pytest.fixture()
def org():
    with SalesforceStandIn() as sf:
        sf.add_user("alice@sfdcflex.demo", "Alice Johnson")
        acme = sf.add_account("Acme <Corp>", type="Customer - Direct", account_number="CD1",
                              sla="Gold", priority="High")
        jane = sf.add_contact("Jane Cooper", account_id=acme, title="VP", phone="(415) 555-0101")
        sf.add_contact("Marcus Lee", account_id=acme, title="IT Director", phone="415.555.0102")
        sf.add_contact("Lone Wolf", mobile_phone="+44 20 7946 0958")
        yield sf, acme, jane


def test_a_record_page_without_a_session_sends_the_browser_to_log_in_and_back(org):
    sf, _, jane = org
    path = f"/lightning/r/Contact/{jane}/view"
    status, headers, _ = page(sf, path)
    assert status == 302
    login = headers["location"]
    assert query_of(login) == {"startURL": path}
    status, _, form = page(sf, login)
    assert status == 200 and "Log in" in form and f'value="{path}"' in form
    cookie, location = log_in(sf, start_url=path)
    assert location == path


def test_the_contact_page_shows_the_fields_the_account_link_and_the_session_user(org):
    sf, acme, jane = org
    sf.record_pages.panel_url = "http://127.0.0.1:3000/"
    cookie, _ = log_in(sf)
    status, headers, html = page(sf, f"/lightning/r/Contact/{jane}/view", cookie)
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "<h1>Jane Cooper</h1>" in html and "<dd>VP</dd>" in html and "(415) 555-0101" in html
    stamp = sf.org.get("Contact", jane)["LastModifiedDate"]  # e.g. 2024-05-14T09:21:07.000+0000
    assert f"<dd>{stamp[:10]} {stamp[11:16]} UTC</dd>" in html
    assert f'<a href="/lightning/r/Account/{acme}/view">Acme &lt;Corp&gt;</a>' in html
    assert "Logged in as Alice Johnson (alice@sfdcflex.demo)" in html
    assert '<a href="http://127.0.0.1:3000/">Back to the agent panel</a>' in html
    # Salesforce also accepts the 15-character form of an id.
    assert page(sf, f"/lightning/r/Contact/{jane[:15]}/view", cookie)[0] == 200


def test_the_account_page_lists_its_contacts_and_no_others(org):
    sf, acme, jane = org
    cookie, _ = log_in(sf)
    status, _, html = page(sf, f"/lightning/r/Account/{acme}/view", cookie)
    assert status == 200
    assert "<h1>Acme &lt;Corp&gt;</h1>" in html and "<h2>Contacts (2)</h2>" in html
    assert f'href="/lightning/r/Contact/{jane}/view">Jane Cooper</a>' in html
    assert "Marcus Lee" in html and "Lone Wolf" not in html
    assert "<dd>Gold</dd>" in html and "<dd>High</dd>" in html


def test_lead_and_task_pages_need_the_session_and_show_the_logged_call(org):
    sf, acme, jane = org
    lead = sf.add_lead("Grace <Hopper>", "Hopper Compilers Inc", title="Founder", phone="+1 303 555 0142")
    alice = sf.org.all("User")[0]["Id"]
    task = sf.org.insert("Task", {"WhoId": lead, "OwnerId": alice, "Subject": "Inbound call",
                                  "Status": "Completed", "ActivityDate": "2026-12-02",
                                  "CallDurationInSeconds": 95, "CallDisposition": "Resolved",
                                  "Description": "Wants a demo", "LastModifiedDate": "2026-12-02T08:00:00.000+0000"})
    for path in (f"/lightning/r/Lead/{lead}/view", f"/lightning/r/Task/{task}/view"):
        assert page(sf, path)[0] == 302
    cookie, _ = log_in(sf)
    status, _, html = page(sf, f"/lightning/r/Lead/{lead}/view", cookie)
    assert status == 200 and "<h1>Grace &lt;Hopper&gt;</h1>" in html
    assert "<dd>Hopper Compilers Inc</dd>" in html and "<h2>Activity history (1)</h2>" in html
    assert f'<a href="/lightning/r/Task/{task}/view">Inbound call</a>' in html and "Wants a demo" in html
    status, _, html = page(sf, f"/lightning/r/Task/{task}/view", cookie)
    assert status == 200 and "<h1>Inbound call</h1>" in html
    assert f'<a href="/lightning/r/Lead/{lead}/view">Grace &lt;Hopper&gt;</a>' in html
    assert "<dd>1 min 35 s</dd>" in html and "<dd>Alice Johnson</dd>" in html
    # The Account page lists only calls related to it (WhatId): none here.
    assert "<h2>Activity history (0)</h2>" in page(sf, f"/lightning/r/Account/{acme}/view", cookie)[2]


@pytest.mark.parametrize("path", ["/lightning/r/Contact/003000000000000AAA/view",
                                  "/lightning/r/Account/{jane}/view"])
def test_unknown_ids_answer_an_html_404_page(org, path):
    sf, _, jane = org
    cookie, _ = log_in(sf)
    status, headers, html = page(sf, path.format(jane=jane), cookie)
    assert status == 404 and headers["content-type"].startswith("text/html")
    assert "<h1>Record not found</h1>" in html and "Logged in as Alice Johnson" in html


def test_the_home_page_is_a_login_form_then_the_accounts(org):
    sf, acme, _ = org
    status, _, form = page(sf, "/")
    assert status == 200 and 'name="username"' in form and "Accounts" not in form
    cookie, _ = log_in(sf)
    status, _, home = page(sf, "/", cookie)
    assert status == 200 and f'href="/lightning/r/Account/{acme}/view"' in home


@pytest.mark.parametrize("start_url", ["//evil.example/", "https://evil.example/", "/\\evil.example"])
def test_login_never_redirects_off_the_site(org, start_url):
    sf, _, _ = org
    _, location = log_in(sf, start_url=start_url)
    assert location == "/"


def test_an_unknown_user_or_a_stale_cookie_gets_the_login_form_again(org):
    sf, _, jane = org
    status, headers, html = call(sf.url + "/", "POST", form={"username": "nobody@x", "startURL": "/"})
    assert status == 200 and "set-cookie" not in headers
    assert "Choose a Salesforce user to log in as." in html.decode()
    status, _, _ = page(sf, f"/lightning/r/Contact/{jane}/view", f"{SESSION_COOKIE}=forged")
    assert status == 302


def test_allow_on_the_consent_page_starts_the_browser_session(org):
    sf, _, jane = org
    status, headers, _ = call(sf.url + "/services/oauth2/authorize", "POST", form={
        **query_of(authorize_url(sf)), "username": "alice@sfdcflex.demo", "decision": "allow"})
    assert status == 302 and "code" in query_of(headers["location"])
    cookie = headers["set-cookie"].split(";")[0]
    assert page(sf, f"/lightning/r/Contact/{jane}/view", cookie)[0] == 200


def test_the_consent_page_makes_allow_the_default_and_deny_skips_validation(org):
    sf, _, _ = org
    _, _, body = call(authorize_url(sf))
    parser = Buttons()
    parser.feed(body.decode())
    # Enter submits with the form's first submit button (HTML implicit submission).
    assert [b["value"] for b in parser.buttons] == ["allow", "deny"]
    assert "formnovalidate" in parser.buttons[1] and "formnovalidate" not in parser.buttons[0]
    assert re.search(r"event\.key === 'Escape'.*button\.deny", body.decode())


def test_sessions_are_bounded_and_forget_the_oldest():
    sessions = BrowserSessions(limit=2)
    cookies = [sessions.open(user) for user in ("u1", "u2", "u3")]

    def user_of(set_cookie: str) -> str | None:
        return sessions.user_id(Request("GET", "/", {}, {"cookie": set_cookie.split(";")[0]}, b""))

    assert [user_of(c) for c in cookies] == [None, "u2", "u3"]


def test_other_methods_on_a_record_page_are_refused(org):
    sf, _, jane = org
    status, headers, _ = call(f"{sf.url}/lightning/r/Contact/{jane}/view", "POST", form={})
    assert status == 405 and headers["allow"] == "GET, HEAD"
