"""The Salesforce stand-in that its OAuth and REST tests share: two users in two orgs, seeded."""
from __future__ import annotations

import pytest

from sfdcflex.demo.standins import SalesforceStandIn


@pytest.fixture()
def sf():
    with SalesforceStandIn() as server:
        server.add_user("alice@sfdcflex.demo", "Alice Johnson")
        server.add_user("mallory@other.org", "Mallory Other", org_id="00D5e000000ZzZzEAA")
        yield server


@pytest.fixture()
def seeded(sf):
    """sf with accounts and contacts, plus a live access token."""
    acme = sf.add_account("Acme", type="Customer - Direct", account_number="CD1", sla="Gold",
                          priority="High")
    sf.add_contact("Jane Cooper", account_id=acme, title="VP", phone="(415) 555-0101")
    sf.add_contact("Sam O'Brien", account_id=acme, phone="415.555.0102")
    sf.add_contact("Lone Wolf", mobile_phone="+44 20 7946 0958")
    sf.add_contact("Riley Park", account_id=acme, phone="(415) 555-0109", indexed=False)
    return sf, sf.issue_tokens("alice@sfdcflex.demo")["access_token"]
