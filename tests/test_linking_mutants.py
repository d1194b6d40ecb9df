"""Linking behaviour that mutation testing found unchecked (mutmut 3.8, issue 18): the words an
agent or administrator reads when Salesforce declines, where the popup reports a failure, what the
operator's log says when refused tokens cannot be revoked.

Each test names the surviving mutants it kills; the equivalent ones are listed in README's
reliability report. One server and one set of stand-ins serve the whole module.
"""
from __future__ import annotations

import logging

import pytest

from conftest import Crm, call, seed
from sfdcflex.demo.standins.salesforce import submit_consent
from sfdcflex.linking import Declined

ALICE = "alice@example.com"


@pytest.fixture(scope="module")
def crm(tmp_path_factory):
    from sfdcflex.demo.standins import IamStandIn, SalesforceStandIn, SyncStandIn
    standins = SalesforceStandIn(), IamStandIn(), SyncStandIn()
    for standin in standins:
        standin.start()
    seed(standins[0], standins[1])
    made = Crm(*standins, tmp_path_factory.mktemp("linking-mutants"))
    yield made
    made.close()
    for standin in standins:
        standin.stop()


# --- Salesforce declines -----------------------------------------------------------------------

def test_deny_tells_the_agent_what_to_do_in_these_words():
    """Declined.from_redirect 5, 8-10."""
    declined = Declined.from_redirect("access_denied", "end-user denied authorization")
    assert (declined.status, declined.code) == (403, "access_denied")
    assert declined.message == ("You pressed Deny on Salesforce's page, so Salesforce is not connected; "
                                "press Connect again and choose Allow to link it")


def test_another_refusal_names_salesforce_s_error_cut_to_60_and_100_characters():
    """Declined.from_redirect 12-15."""
    error, description = "E" * 59 + "rr", "d" * 99 + "ee"
    declined = Declined.from_redirect(error, description)
    assert declined.message == (f"Salesforce refused the sign-in ({'E' * 59}r: {'d' * 99}e), "
                                "so nothing was linked; ask your Salesforce administrator")


def test_a_declined_popup_reports_to_the_panel_that_started_it(crm):
    """origin_of 1, 2 (the failure page posted to FLEX_INSTANCE_URL instead of the state's origin)."""
    start = crm.post("/auth", {"Token": crm.token(ALICE), "origin": crm.url})
    location = submit_consent(start.json()["authorize_url"], ALICE, allow=False)
    page = call(crm.url, "GET", location[len(crm.url):])
    assert page.status == 403 and '"link_failed"' in page.body.decode()
    assert f'postMessage(message, "{crm.url}")' in page.body.decode()


# --- a refused link whose tokens cannot be revoked ------------------------------------------------

def test_a_refused_link_whose_revoke_fails_logs_why(crm, caplog):
    """_revoke_quietly 3, 5, 6 (the operator's log line garbled)."""
    crm.sf.fail_next("revoke", status=500)
    with caplog.at_level(logging.WARNING, logger="sfdcflex"):
        refused = crm.link(ALICE, sfdc_username="mallory.other@example.com")
    assert refused.status == 403 and b"identity_mismatch" in refused.body
    assert "could not revoke refused tokens: salesforce_error" in caplog.messages
