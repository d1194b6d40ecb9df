"""Lookup behaviour that mutation testing found unchecked (mutmut 3.8, issue 18): what a lookup
tells the browser in Server-Timing, which fuzzy search hits it keeps, in which order it shows them.

Each test names the surviving mutants it kills; the equivalent ones are listed in README's
reliability report. One server and one set of stand-ins serve the whole module; the Salesforce
stand-in's search is made to answer exact records where Salesforce's fuzziness matters.
"""
from __future__ import annotations

import json

import pytest

from tests.support.crm import crm_on_own_standins
from sfdcflex.cache import LRUCache
from sfdcflex.cards import NoMatch
from sfdcflex.lookup import Lookup
from sfdcflex.phone import parse_phone
from sfdcflex.runtime.timing import ServerTiming

ALICE = "alice@example.com"


@pytest.fixture(scope="module")
def crm(tmp_path_factory):
    with crm_on_own_standins(tmp_path_factory.mktemp("lookup-mutants")) as made:
        assert made.link(ALICE).status == 200
        yield made


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


@pytest.mark.parametrize("body,looked_for", [({"phone": "(999) 555-0143"}, "phone number +19995550143"),
                                             ({"email": "Nobody@Example.com"}, "email address nobody@example.com")])
def test_no_match_says_what_was_looked_for(crm, body, looked_for):
    """contact 51, _described (the 404's words)."""
    answer = _contact(crm, **body)
    assert answer.status == 404 and answer.json()["error"] == "no_match"
    assert answer.json()["message"] == f"No contact in Salesforce has the {looked_for}"


def test_get_user_answers_each_userinfo_field_and_falls_back_to_the_username(crm):
    """user 50-53 and their kin (a field renamed or read from the wrong userinfo key)."""
    crm.services.lookup.forget(ALICE)
    info = {"preferred_username": ALICE, "email": "alice.mail@example.com",
            "user_id": "005000000000042AAA", "organization_id": crm.sf.org_id}
    crm.sf.fail_next("userinfo", status=200, body=json.dumps(info).encode(), content_type="application/json")
    answer = crm.post("/get-user", {"Token": crm.token(ALICE)})
    assert answer.status == 200, answer.body
    assert answer.json() == {"flex_identity": ALICE, "sfdc_username": ALICE, "display_name": ALICE,
                             "email": "alice.mail@example.com", "sfdc_user_id": "005000000000042AAA",
                             "sfdc_org_id": crm.sf.org_id}
    crm.services.lookup.forget(ALICE)
    named = crm.post("/get-user", {"Token": crm.token(ALICE)})
    assert (named.json()["display_name"], named.json()["email"]) == ("Alice Agent", ALICE)
    assert 'cache;desc="miss"' in _hops(named)
    assert 'cache;desc="hit"' in _hops(crm.post("/get-user", {"Token": crm.token(ALICE)}))   # user 83


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


# --- how long answers are cached -----------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _lookup(crm, ttl: float) -> tuple[Lookup, FakeClock]:
    """The service's own Salesforce client and keeper, with a cache on a clock the test moves."""
    clock = FakeClock()
    return Lookup(crm.services.salesforce, crm.services.keeper, LRUCache(clock=clock), ttl=ttl), clock


def _searches_for(crm, lookup: Lookup, phone: str) -> int:
    """How many Salesforce searches one lookup of `phone` costs (0: answered from the cache)."""
    before = crm.sf.calls["search"]
    try:
        lookup.contact(ALICE, parse_phone(phone), ServerTiming())
    except NoMatch:
        pass
    return crm.sf.calls["search"] - before


@pytest.mark.parametrize("ttl,no_match_ttl", [(100.0, 20.0), (400.0, 60.0)])
def test_a_card_is_cached_for_the_ttl_and_no_match_for_a_fifth_of_it_at_most_a_minute(crm, ttl, no_match_ttl):
    """contact 38, 39 (one ttl for both), __init__ (the no-match ttl's fifth or its one-minute cap)."""
    lookup, clock = _lookup(crm, ttl)
    start, found, unknown = clock.now, "+1 212 555 0103", "+1 999 555 0142"
    assert (_searches_for(crm, lookup, found), _searches_for(crm, lookup, unknown)) == (1, 1)
    clock.now = start + no_match_ttl - 0.5
    assert (_searches_for(crm, lookup, found), _searches_for(crm, lookup, unknown)) == (0, 0)
    clock.now = start + no_match_ttl
    assert (_searches_for(crm, lookup, found), _searches_for(crm, lookup, unknown)) == (0, 1)
    clock.now = start + ttl - 0.5
    assert _searches_for(crm, lookup, found) == 0
    clock.now = start + ttl
    assert _searches_for(crm, lookup, found) == 1
