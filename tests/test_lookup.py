"""Lookup in process, on a fake Salesforce and keeper: the SOSL and SOQL it sends, which fuzzy hits
it keeps and in which order, how long answers are cached, and the objects it looks in.
(get-contact end to end: tests/functions/test_get_contact*.py.)"""
from __future__ import annotations

import pytest

from sfdcflex.cache import LRUCache
from sfdcflex.cards import NoMatch
from sfdcflex.config import load_config
from sfdcflex.email_address import parse_email
from sfdcflex.lookup import Lookup, soql_for, sosl_for
from sfdcflex.phone import parse_phone
from sfdcflex.runtime.response import encode_json
from sfdcflex.runtime.timing import ServerTiming
from tests.support.clocks import FakeClock
from tests.support.crm import FLEX_URL

ALICE = "alice@example.com"
MARY = {"attributes": {"type": "Contact"}, "Id": "003000000000009AAA", "Name": "Mary Mobile",
        "MobilePhone": "+1 212 555 0103"}


class FakeSalesforce:
    """Answers each SOSL search with `searched` (or Mary Mobile for her number) and SOQL with nothing."""

    instance_url = "https://example.my.salesforce.com"

    def __init__(self) -> None:
        self.searches = 0
        self.searched: list[dict] | None = None

    def search(self, access_token: str, sosl: str) -> list[dict]:
        self.searches += 1
        if self.searched is not None:
            return self.searched
        return [MARY] if "2125550103" in sosl else []

    def query(self, access_token: str, soql: str) -> list[dict]:
        return []


class FakeKeeper:
    """One link that never changes, whose access token works."""

    def link_revision(self, identity: str, timing: ServerTiming) -> str:
        return "revision-1"

    def call(self, identity, use, timing: ServerTiming, hop: str, desc: str):
        with timing.span(hop, desc):
            return use("access-token")


def _lookup(ttl: float = 300.0) -> tuple[Lookup, FakeSalesforce, FakeClock]:
    sf, clock = FakeSalesforce(), FakeClock(1000.0)
    return Lookup(sf, FakeKeeper(), LRUCache(clock=clock), ttl=ttl), sf, clock


def _searches_for(lookup: Lookup, sf: FakeSalesforce, phone: str) -> int:
    """How many Salesforce searches one lookup of `phone` costs (0: answered from the cache)."""
    before = sf.searches
    try:
        lookup.contact(ALICE, parse_phone(phone), ServerTiming())
    except NoMatch:
        pass
    return sf.searches - before


def test_queries_carry_only_digits_and_quoted_variants():
    number = parse_phone("+1 (415) 555-0101")
    assert sosl_for(number).startswith("FIND {4155550101} IN PHONE FIELDS RETURNING Contact(")
    soql = soql_for(number)
    assert "'(415) 555-0101'" in soql and "'+14155550101'" in soql
    assert "ORDER BY LastModifiedDate DESC" in soql


def test_sosl_returns_contacts_then_leads_in_one_statement():
    sosl = sosl_for(parse_phone("+14155550101"))
    assert sosl.startswith("FIND {4155550101} IN PHONE FIELDS RETURNING Contact(")
    assert sosl.index("Contact(") < sosl.index("), Lead(Id, Name, Title, Company")
    assert "Lead(" not in sosl_for(parse_phone("+14155550101"), ("Contact",))
    assert sosl_for(parse_email("a-b+c@x.example")).startswith(
        "FIND {a\\-b\\+c@x.example} IN EMAIL FIELDS RETURNING Contact(")


# --- which hits are kept, in which order, for how long ----------------------------------------


def test_a_fuzzy_email_hit_for_another_address_is_not_the_caller():
    """A fuzzy search hit for another email address is not the caller."""
    lookup, sf, _ = _lookup()
    sf.searched = [{"attributes": {"type": "Contact"}, "Id": "003000000000001AAA",
                    "Name": "Other Person", "Email": "ada.other@example.com"}]
    with pytest.raises(NoMatch) as refused:
        lookup.contact(ALICE, parse_email("ada@example.com"), ServerTiming())
    assert refused.value.status == 404 and refused.value.code == "no_match"


def test_contacts_come_before_leads_and_an_untyped_record_counts_as_a_contact():
    """Contacts come before Leads, and a record without a type counts as a Contact."""
    lookup, sf, _ = _lookup()
    phone = "4155550177"
    sf.searched = [
        {"attributes": {"type": "Lead"}, "Id": "00Q000000000001AAA", "Name": "Lena Lead", "Phone": phone},
        {"Id": "003000000000002AAA", "Name": "Una Untyped", "Phone": phone},
        {"attributes": {"type": "Contact"}, "Id": "003000000000003AAA", "Name": "Cora Contact", "Phone": phone},
    ]
    card = lookup.contact(ALICE, parse_phone(phone), ServerTiming())
    assert [c["cust_name"] for c in card["candidates"]] == ["Una Untyped", "Cora Contact", "Lena Lead"]
    assert card["cust_name"] == "Una Untyped" and card["matches"] == 3


def test_a_cached_answer_is_encoded_once_per_pick_and_reads_as_the_card():
    """contact_json is contact's card as the runtime encodes it; a cache hit sends the bytes of the
    first answer (not encoded again), each pick has its own, and an unknown pick is still refused."""
    lookup, sf, _ = _lookup()
    phone = "4155550177"
    sf.searched = [{"attributes": {"type": "Contact"}, "Id": f"00300000000000{n}AAA", "Name": f"C{n}",
                    "Phone": phone} for n in (1, 2)]
    caller = parse_phone(phone)
    first = lookup.contact_json(ALICE, caller, ServerTiming())
    assert first == encode_json(lookup.contact(ALICE, caller, ServerTiming()))
    assert lookup.contact_json(ALICE, caller, ServerTiming()) is first and sf.searches == 1
    other = lookup.contact_json(ALICE, caller, ServerTiming(), "003000000000002AAA")
    assert other == encode_json(lookup.contact(ALICE, caller, ServerTiming(), "003000000000002AAA"))
    assert b'"cust_name":"C2"' in other and b'"cust_name":"C1"' in first
    assert lookup.contact_json(ALICE, caller, ServerTiming(), "003000000000002AAA") is other
    with pytest.raises(NoMatch):
        lookup.contact_json(ALICE, caller, ServerTiming(), "003000000000003AAA")


@pytest.mark.parametrize("ttl,no_match_ttl", [(100.0, 20.0), (400.0, 60.0)])
def test_a_card_is_cached_for_the_ttl_and_no_match_for_a_fifth_of_it_at_most_a_minute(ttl, no_match_ttl):
    """A card is cached for the ttl, no match for a fifth of it (at most a minute)."""
    lookup, sf, clock = _lookup(ttl)
    start, found, unknown = clock.now, "+1 212 555 0103", "+1 999 555 0142"
    assert (_searches_for(lookup, sf, found), _searches_for(lookup, sf, unknown)) == (1, 1)
    clock.now = start + no_match_ttl - 0.5
    assert (_searches_for(lookup, sf, found), _searches_for(lookup, sf, unknown)) == (0, 0)
    clock.now = start + no_match_ttl
    assert (_searches_for(lookup, sf, found), _searches_for(lookup, sf, unknown)) == (0, 1)
    clock.now = start + ttl - 0.5
    assert _searches_for(lookup, sf, found) == 0
    clock.now = start + ttl
    assert _searches_for(lookup, sf, found) == 1


# --- the objects a lookup looks in (SFDC_LOOKUP_OBJECTS) -----------------------------------------


@pytest.mark.parametrize("value,objects", [("", ("Contact", "Lead")), ("Contact", ("Contact",)),
                                           (" lead , CONTACT ", ("Contact", "Lead"))])
def test_lookup_objects_setting(value, objects):
    assert _config(value).lookup_objects == objects


@pytest.mark.parametrize("value", ["Lead", "Contact,Opportunity", ","])
def test_lookup_objects_setting_refuses_others(value):
    from sfdcflex.runtime.errors import ConfigError
    with pytest.raises(ConfigError, match="SFDC_LOOKUP_OBJECTS"):
        _config(value)


def _config(objects: str):
    return load_config({"ACCOUNT_SID": "AC" + "0" * 32, "AUTH_TOKEN": "x", "SFDC_CLIENT_ID": "id",
                        "SFDC_INSTANCE_URL": "https://example.my.salesforce.com",
                        "SFDC_ORG_ID": "00D5e000000AbCdEAF", "SFDC_CLIENT_SECRET": "s",
                        "FLEX_INSTANCE_URL": FLEX_URL, "SFDC_LOOKUP_OBJECTS": objects})
