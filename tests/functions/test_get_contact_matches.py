"""get-contact beyond one phone and one Contact, end to end over the stand-ins: several matches,
picking one, email, Leads, and what the agent may see."""
from __future__ import annotations

import pytest

ALICE = "alice@example.com"
ORIGINAL_FIELDS = ("cust_name", "cust_record_url", "cust_title", "cust_acct_name", "cust_acct_type",
                   "cust_acct_num", "cust_acct_sla", "cust_acct_priority")


def _ids(crm) -> dict[str, str]:
    return {c["Name"]: c["Id"] for c in crm.sf.org.all("Contact")}


def _emails(crm) -> None:
    ids = _ids(crm)
    crm.sf.org.update("Contact", ids["Ada Lovelace"], {"Email": "Ada.Lovelace@Example.com"})
    crm.sf.org.update("Contact", ids["Mary Mobile"], {"Email": "o'brien+flex@example.com"})


@pytest.fixture
def linked(crm):
    crm.link(ALICE)
    _emails(crm)
    crm.grace = crm.sf.add_lead("Grace Prospect", "Hopper Industries", title="CTO",
                                phone="+1 303 555 0142", email="grace@hopper.example")
    return crm


def _contact(crm, **body):
    return crm.post("/get-contact", {"Token": crm.token(ALICE), **body})


def _calls(crm) -> tuple[int, int]:
    return crm.sf.calls["search"], crm.sf.calls["query"]


def test_a_shared_number_answers_the_newest_and_lists_every_candidate(linked):
    answer = _contact(linked, phone="+14155550101")
    assert answer.status == 200, answer.body
    card = answer.json()
    assert (card["cust_name"], card["cust_type"], card["matches"]) == ("Ada Lovelace", "Contact", 2)
    assert all(name in card for name in ORIGINAL_FIELDS)
    ids = _ids(linked)
    newest_first = [ids["Ada Lovelace"], ids["Charles Babbage"]]
    assert [c["cust_id"] for c in card["candidates"]] == newest_first
    babbage = card["candidates"][1]
    assert babbage == {"cust_id": ids["Charles Babbage"], "cust_type": "Contact",
                       "cust_name": "Charles Babbage", "cust_title": "Founder",
                       "cust_acct_name": "Analytical Engines",
                       "cust_record_url": f"{linked.sf.url}/lightning/r/Contact/{ids['Charles Babbage']}/view"}


def test_contact_id_picks_a_candidate_from_the_cache(linked):
    _contact(linked, phone="+14155550101")
    before = _calls(linked)
    babbage = _ids(linked)["Charles Babbage"]
    for pick in (babbage, babbage[:15]):
        answer = _contact(linked, phone="(415) 555-0101", contact_id=pick)
        assert answer.status == 200, answer.body
        assert answer.json()["cust_name"] == "Charles Babbage"
        assert answer.json()["cust_title"] == "Founder"
        assert len(answer.json()["candidates"]) == 2
        assert 'cache;desc="hit"' in answer.headers["Server-Timing"]
    assert _calls(linked) == before


def test_a_contact_id_that_is_not_a_candidate_is_404_and_a_malformed_one_400(linked):
    other = _ids(linked)["Joseph Jacquard"]
    answer = _contact(linked, phone="+14155550101", contact_id=other)
    assert answer.status == 404 and answer.json()["error"] == "no_match"
    before = _calls(linked)
    bad = _contact(linked, phone="+14155550101", contact_id="001' OR Id != '")
    assert bad.status == 400 and bad.json()["error"] == "invalid_contact_id"
    assert _calls(linked) == before


def test_one_match_has_no_candidates(linked):
    card = _contact(linked, phone="+44 20 7946 0958").json()
    assert card["cust_name"] == "Joseph Jacquard" and card["matches"] == 1
    assert "candidates" not in card


def test_email_finds_the_contact_in_one_search(linked):
    before = _calls(linked)
    answer = _contact(linked, email="  ADA.lovelace@EXAMPLE.com ")
    assert answer.status == 200, answer.body
    assert answer.json()["cust_name"] == "Ada Lovelace"
    assert answer.json()["cust_acct_name"] == "Analytical Engines"
    assert _calls(linked) == (before[0] + 1, before[1])
    again = _contact(linked, email="ada.lovelace@example.com")
    assert 'cache;desc="hit"' in again.headers["Server-Timing"]


def test_email_with_sosl_reserved_characters_is_escaped(linked):
    answer = _contact(linked, email="O'Brien+Flex@example.com")
    assert answer.status == 200, answer.body
    assert answer.json()["cust_name"] == "Mary Mobile"


def test_email_not_yet_in_the_search_index_is_found_by_soql(linked):
    ids = _ids(linked)
    linked.sf.org.update("Contact", ids["Nina New"], {"Email": "nina@new.example"})
    before = _calls(linked)
    answer = _contact(linked, email="nina@new.example")
    assert answer.json()["cust_name"] == "Nina New"
    assert _calls(linked) == (before[0] + 1, before[1] + 1)


BAD_EMAILS = ["", "ada", "ada@", "@example.com", "ada@example", "a b@example.com", "ada@@example.com",
              "x" * 65 + "@example.com", 42, ["a@b.co"], "ada@example.com} OR {x", "ada@exa_mple.com",
              "ada@" + ("a" * 61 + ".") * 4 + "com"]  # 255 characters: one over RFC 5321's limit


def test_bad_email_is_400_and_reaches_no_query(linked):
    before = sum(linked.sf.calls.values())
    for email in BAD_EMAILS:
        answer = _contact(linked, email=email)
        assert (answer.status, answer.json()["error"]) == (400, "invalid_email"), (email, answer.body)
    assert sum(linked.sf.calls.values()) == before


def test_a_lead_has_its_own_card(linked):
    for body in ({"phone": "303-555-0142"}, {"email": "Grace@Hopper.example"}):
        answer = _contact(linked, **body)
        assert answer.status == 200, answer.body
        assert answer.json() == {
            "cust_id": linked.grace, "cust_type": "Lead", "cust_name": "Grace Prospect",
            "cust_title": "CTO", "cust_company": "Hopper Industries", "matches": 1,
            "cust_record_url": f"{linked.sf.url}/lightning/r/Lead/{linked.grace}/view"}


def test_a_contact_wins_over_a_newer_lead_in_one_salesforce_call(linked):
    lead = linked.sf.add_lead("Ada Again", "Lovelace Labs", phone="415 555 0101",
                              last_modified="2030-01-01T00:00:00.000+0000")
    before = sum(linked.sf.calls.values())
    card = _contact(linked, phone="+14155550101").json()
    assert sum(linked.sf.calls.values()) == before + 1
    assert (card["cust_name"], card["cust_type"], card["matches"]) == ("Ada Lovelace", "Contact", 3)
    assert [(c["cust_type"], c["cust_id"]) for c in card["candidates"]][-1] == ("Lead", lead)
    assert card["candidates"][-1]["cust_acct_name"] == "Lovelace Labs"


def test_lookup_objects_contact_turns_leads_off(crm_factory):
    crm = crm_factory(SFDC_LOOKUP_OBJECTS="Contact")
    crm.link(ALICE)
    crm.sf.add_lead("Grace Prospect", "Hopper Industries", phone="+1 303 555 0142")
    answer = _contact(crm, phone="303-555-0142")
    assert answer.status == 404 and answer.json()["error"] == "no_match"


def test_the_original_plugins_path_and_fields_are_unchanged(linked):
    answer = linked.post("/get-contact-account-data", {"Token": linked.token(ALICE), "phone": "+12125550103"})
    assert answer.status == 200
    card = answer.json()
    assert (card["cust_name"], card["cust_acct_name"], card["cust_acct_sla"]) == \
        ("Mary Mobile", "Jacquard Looms", "Silver")
    assert all(name in card for name in ORIGINAL_FIELDS)


def test_agents_who_may_not_read_leads_need_lookup_objects_contact(crm_factory):
    crm = crm_factory()
    crm.link(ALICE)
    alice = next(u for u in crm.sf.org.all("User") if u["Username"] == ALICE)
    crm.sf.writes.rules.denied.add((alice["Id"], "read", "Lead"))
    refused = _contact(crm, phone="+12125550103")
    assert refused.status == 502 and "INVALID_TYPE" in refused.json()["message"]
    contacts_only = crm_factory(SFDC_LOOKUP_OBJECTS="Contact")
    answer = contacts_only.post("/get-contact", {"Token": crm.token(ALICE), "phone": "+12125550103"})
    assert answer.status == 200 and answer.json()["cust_name"] == "Mary Mobile"


def test_records_sharing_hides_from_the_agent_are_not_candidates(linked):
    alice = next(u for u in linked.sf.org.all("User") if u["Username"] == ALICE)
    linked.sf.writes.rules.hidden.add((alice["Id"], _ids(linked)["Charles Babbage"]))
    card = _contact(linked, phone="+14155550101").json()
    assert (card["cust_name"], card["matches"]) == ("Ada Lovelace", 1)
    assert "candidates" not in card


def test_the_fuzzy_search_s_near_misses_are_never_shown_to_the_agent(linked):
    """SOSL finds the same local number under another area code, or followed by more digits;
    the agent sees only records whose number is the caller's, and a caller only near misses
    match is no match."""
    linked.sf.add_contact("Other Area", phone="(212) 555-0101")
    linked.sf.add_contact("Longer Number", phone="415 555 0101 22")
    linked.sf.add_lead("Lead Elsewhere", "Elsewhere Inc", phone="+1 646 555 0101")
    answer = _contact(linked, phone="+14155550101")
    assert answer.status == 200, answer.body
    shown = {answer.json()["cust_name"]} | {c["cust_name"] for c in answer.json()["candidates"]}
    assert shown == {"Ada Lovelace", "Charles Babbage"} and answer.json()["matches"] == 2
    nobody = _contact(linked, phone="+13125550101")
    assert (nobody.status, nobody.json()["error"]) == (404, "no_match")
