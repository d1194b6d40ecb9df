"""get-contact by phone end to end over the stand-ins: formats, the card, the cache, what each lookup
costs upstream, what it tells the browser in Server-Timing, and Salesforce's failures and odd answers."""
from __future__ import annotations

import pytest

from tests.support.crm import crm_on_own_standins
from tests.support.http import hops

ALICE, BOB = "alice@example.com", "bob@example.com"


@pytest.fixture
def linked(crm):
    crm.link(ALICE)
    crm.link(BOB)
    return crm


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    with crm_on_own_standins(tmp_path_factory.mktemp("get-contact")) as made:
        assert made.link(ALICE).status == 200 and made.link(BOB).status == 200
        yield made


@pytest.fixture
def reader(shared_server):
    """Alice and Bob linked on one server shared by the tests that take it, which only look up
    (no faults injected, no records changed); each starts with nothing cached."""
    for identity in (ALICE, BOB):
        shared_server.services.lookup.forget(identity)
    return shared_server


def _contact(crm, phone, who=ALICE, **extra):
    return crm.post("/get-contact", {"Token": crm.token(who), "phone": phone, **extra})


@pytest.mark.parametrize("phone", ["(415) 555-0101", "+14155550101", "415.555.0101", "1-415-555-0101",
                                   "4155550101", "+1 415 555 0101", "415 555 0101 ext. 12"])
def test_us_number_in_any_written_form_finds_the_newest_contact(reader, phone):
    answer = _contact(reader, phone)
    assert answer.status == 200, answer.body
    card = answer.json()
    assert card["cust_name"] == "Ada Lovelace"  # newer than Charles Babbage on the same number
    assert card["matches"] == 2
    assert card["cust_title"] == "Chief Analyst"
    assert card["cust_acct_name"] == "Analytical Engines"
    assert (card["cust_acct_type"], card["cust_acct_num"]) == ("Customer - Direct", "AE-1001")
    assert (card["cust_acct_sla"], card["cust_acct_priority"]) == ("Gold", "High")
    assert card["cust_record_url"] == f"{reader.sf.url}/lightning/r/Contact/{card['cust_id']}/view"


@pytest.mark.parametrize("phone,country", [("+44 20 7946 0958", None), ("020 7946 0958", "GB"),
                                           ("0044 20 7946 0958", None), ("2079460958", "gb")])
def test_international_numbers(reader, phone, country):
    extra = {"country": country} if country else {}
    answer = _contact(reader, phone, **extra)
    assert answer.status == 200, answer.body
    assert answer.json()["cust_name"] == "Joseph Jacquard"


def test_mobile_phone_only_contact(reader):
    assert _contact(reader, "212-555-0103").json()["cust_name"] == "Mary Mobile"


def test_contact_not_yet_in_the_search_index_is_found_by_soql(reader):
    searches, queries = reader.sf.calls["search"], reader.sf.calls["query"]
    answer = _contact(reader, "(646) 555-0199")
    assert answer.json()["cust_name"] == "Nina New"
    assert (reader.sf.calls["search"], reader.sf.calls["query"]) == (searches + 1, queries + 1)
    assert "sfdc-query" in answer.headers["Server-Timing"]


@pytest.mark.parametrize("body", [{"phone": "12"}, {"phone": "1234567890123456"}, {"phone": 4155550101},
                                  {"phone": None}, {}, {"phone": "415' OR Name != '"},
                                  {"phone": "+1 415 555 0101", "country": "Narnia"},
                                  {"phone": ["4155550101"]}, {"phone": "x" * 10_000}])
def test_bad_phone_input_is_400_and_reaches_no_query(reader, body):
    calls = sum(reader.sf.calls.values())
    answer = reader.post("/get-contact", {"Token": reader.token(ALICE), **body})
    assert answer.status == 400
    assert answer.json()["error"] in ("invalid_phone", "bad_request")
    assert sum(reader.sf.calls.values()) == calls


def test_unknown_number_is_404_no_match_and_cached_briefly(reader):
    first = _contact(reader, "+1 999 555 0100")
    assert first.status == 404 and first.json()["error"] == "no_match"
    calls = sum(reader.sf.calls.values())
    again = _contact(reader, "+1 999 555 0100")
    assert again.status == 404 and sum(reader.sf.calls.values()) == calls
    assert 'cache;desc="hit"' in again.headers["Server-Timing"]


def test_cache_hit_costs_no_upstream_call_and_stays_per_agent(linked):
    token = linked.token(ALICE)
    miss = linked.post("/get-contact", {"Token": token, "phone": "+14155550101"})
    assert 'cache;desc="miss"' in miss.headers["Server-Timing"]
    sf_calls, iam_calls = sum(linked.sf.calls.values()), linked.iam.calls["validate"]
    for _ in range(5):
        hit = linked.post("/get-contact", {"Token": token, "phone": "(415) 555-0101"})
        assert hit.status == 200 and 'cache;desc="hit"' in hit.headers["Server-Timing"]
    assert sum(linked.sf.calls.values()) == sf_calls
    assert linked.iam.calls["validate"] == iam_calls
    # Bob asks for the same number: his own Salesforce call, never Alice's cached record.
    bob = _contact(linked, "+14155550101", who="bob@example.com")
    assert 'cache;desc="miss"' in bob.headers["Server-Timing"]
    assert sum(linked.sf.calls.values()) == sf_calls + 1


def test_upstream_calls_per_lookup(crm_factory):
    crm = crm_factory()
    crm.link(ALICE)
    fresh = crm_factory()  # a new instance: nothing in memory yet, the link is in the shared store
    token = crm.token(ALICE)
    before = (crm.iam.calls["validate"], sum(crm.sf.calls.values()))
    first = fresh.post("/get-contact", {"Token": token, "phone": "+14155550101"})
    assert first.status == 200
    timing = first.headers["Server-Timing"]
    assert 'store;desc="token store read"' in timing
    assert (crm.iam.calls["validate"], sum(crm.sf.calls.values())) == (before[0] + 1, before[1] + 1)
    second = fresh.post("/get-contact", {"Token": token, "phone": "+12125550103"})
    # The tokens are looked at twice (the cache key's link revision, then the call), one hop.
    assert second.headers["Server-Timing"].count('store;desc="tokens in memory"') == 1
    assert "no IAM call" in second.headers["Server-Timing"]
    assert (crm.iam.calls["validate"], sum(crm.sf.calls.values())) == (before[0] + 1, before[1] + 2)


# --- Server-Timing and the 404's words ---------------------------------------------------------


def test_a_lookup_names_its_search_in_server_timing(reader):
    """A lookup names its search hop in Server-Timing."""
    answer = _contact(reader, "+1 212 555 0103")
    assert answer.status == 200 and answer.json()["cust_name"] == "Mary Mobile"
    assert 'sfdc-search;desc="Salesforce SOSL search"' in hops(answer)


def test_a_lookup_the_search_index_missed_names_its_query_in_server_timing(reader):
    """A lookup the search index missed names its query hop, right after the search."""
    answer = _contact(reader, "(646) 555-0199")
    assert answer.status == 200 and answer.json()["cust_name"] == "Nina New"
    seen = hops(answer)
    assert seen[seen.index('sfdc-search;desc="Salesforce SOSL search"') + 1] == \
        'sfdc-query;desc="Salesforce SOQL query (search index lag)"'


@pytest.mark.parametrize("body,looked_for", [({"phone": "(999) 555-0143"}, "phone number +19995550143"),
                                             ({"email": "Nobody@Example.com"}, "email address nobody@example.com")])
def test_no_match_says_what_was_looked_for(reader, body, looked_for):
    """The 404 says what was looked for."""
    answer = reader.post("/get-contact", {"Token": reader.token(ALICE), **body})
    assert answer.status == 404 and answer.json()["error"] == "no_match"
    assert answer.json()["message"] == f"No contact in Salesforce has the {looked_for}"


# --- Salesforce's failures and odd answers ----------------------------------------------------


def test_salesforce_failures_are_502_with_a_clear_message(linked):
    linked.sf.fail_next("search", status=503, body=b"<html>Service Unavailable</html>",
                        content_type="text/html")
    down = _contact(linked, "+14155550101")
    assert down.status == 502 and "Salesforce" in down.json()["message"]
    linked.sf.request_limit_exceeded = True
    limited = _contact(linked, "+12125550103")
    assert limited.status == 502
    assert limited.json()["error"] == "salesforce_request_limit"
    assert "limit" in limited.json()["message"].lower()


@pytest.mark.parametrize("endpoint,body,phone", [
    ("search", b'{"records": []}', "+1 415 555 0191"),      # no searchRecords list
    ("search", b"not json", "+1 415 555 0192"),
    ("query", b'{"totalSize": 0}', "+1 415 555 0193"),      # no records list
])
def test_odd_rest_answers_are_502(crm, endpoint, body, phone):
    assert crm.link(ALICE).status == 200
    if endpoint == "query":   # the SOQL query runs only after a search that found nothing
        crm.sf.fail_next("search", status=200, body=b'{"searchRecords": []}')
    crm.sf.fail_next(endpoint, status=200, body=body)
    answer = crm.post("/get-contact", {"Token": crm.token(ALICE), "phone": phone})
    assert answer.status == 502 and answer.json()["error"] == "salesforce_error", answer.body


def test_a_search_answering_a_bare_list_is_read_as_older_api_versions_write_it(crm):
    assert crm.link(ALICE).status == 200
    crm.sf.fail_next("search", status=200, body=b"[]")
    answer = crm.post("/get-contact", {"Token": crm.token(ALICE), "phone": "(415) 555-0101"})
    assert answer.status == 200 and answer.json()["cust_name"] == "Ada Lovelace"   # found by SOQL
