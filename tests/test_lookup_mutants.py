"""Lookup behaviour that mutation testing found unchecked (mutmut 3.8, issue 18): what a lookup
tells the browser in Server-Timing, which fuzzy search hits it keeps, in which order it shows them.

Each test names the surviving mutants it kills; the equivalent ones are listed in README's
reliability report. One server and one set of stand-ins serve the whole module; the Salesforce
stand-in's search is made to answer exact records where Salesforce's fuzziness matters.
"""
from __future__ import annotations

import json

import pytest

from conftest import Crm, seed

ALICE = "alice@example.com"


@pytest.fixture(scope="module")
def crm(tmp_path_factory):
    from sfdcflex.demo.standins import IamStandIn, SalesforceStandIn, SyncStandIn
    standins = SalesforceStandIn(), IamStandIn(), SyncStandIn()
    for standin in standins:
        standin.start()
    seed(standins[0], standins[1])
    made = Crm(*standins, tmp_path_factory.mktemp("lookup-mutants"))
    assert made.link(ALICE).status == 200
    yield made
    made.close()
    for standin in standins:
        standin.stop()


def _contact(crm, **body):
    return crm.post("/get-contact", {"Token": crm.token(ALICE), **body})


def _hops(answer) -> list[str]:
    """Server-Timing entries without their durations: name;desc="..." in order."""
    return [entry.split(";dur=")[0].strip() for entry in answer.headers["Server-Timing"].split(",")]


def _search_answers_next(crm, records: list[dict]) -> None:
    """The Salesforce stand-in's next SOSL search answers exactly these records."""
    crm.sf.fail_next("search", status=200, body=json.dumps({"searchRecords": records}).encode(),
                     content_type="application/json")


# --- Server-Timing ------------------------------------------------------------------------------

def test_a_lookup_names_its_search_in_server_timing(crm):
    """_cards_from_salesforce 22-26 (the search hop's name or words)."""
    answer = _contact(crm, phone="+1 212 555 0103")
    assert answer.status == 200 and answer.json()["cust_name"] == "Mary Mobile"
    assert 'sfdc-search;desc="Salesforce SOSL search"' in _hops(answer)


def test_a_lookup_the_search_index_missed_names_its_query_in_server_timing(crm):
    """_cards_from_salesforce 40, 51-55 (the query hop's name or words)."""
    answer = _contact(crm, phone="(646) 555-0199")
    assert answer.status == 200 and answer.json()["cust_name"] == "Nina New"
    hops = _hops(answer)
    assert hops[hops.index('sfdc-search;desc="Salesforce SOSL search"') + 1] == \
        'sfdc-query;desc="Salesforce SOQL query (search index lag)"'


# --- which hits are kept, in which order ---------------------------------------------------------

def test_a_fuzzy_email_hit_for_another_address_is_not_the_caller(crm):
    """_confirmed 1 (any record with an email kept)."""
    _search_answers_next(crm, [{"attributes": {"type": "Contact"}, "Id": "003000000000001AAA",
                                "Name": "Other Person", "Email": "ada.other@example.com"}])
    answer = _contact(crm, email="ada@example.com")
    assert answer.status == 404 and answer.json()["error"] == "no_match"


def test_contacts_come_before_leads_and_an_untyped_record_counts_as_a_contact(crm):
    """_cards_from_salesforce 65, 66, 68-76 (the Contact-before-Lead order lost or broken)."""
    phone = "4155550177"
    _search_answers_next(crm, [
        {"attributes": {"type": "Lead"}, "Id": "00Q000000000001AAA", "Name": "Lena Lead", "Phone": phone},
        {"Id": "003000000000002AAA", "Name": "Una Untyped", "Phone": phone},
        {"attributes": {"type": "Contact"}, "Id": "003000000000003AAA", "Name": "Cora Contact", "Phone": phone},
    ])
    answer = _contact(crm, phone=phone)
    assert answer.status == 200, answer.body
    assert [c["cust_name"] for c in answer.json()["candidates"]] == ["Una Untyped", "Cora Contact", "Lena Lead"]
    assert answer.json()["cust_name"] == "Una Untyped" and answer.json()["matches"] == 3
