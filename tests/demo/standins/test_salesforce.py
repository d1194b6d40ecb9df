"""The Salesforce stand-in's REST API over real HTTP: query, search, errors, faults, keep-alive,
ids and the demo data (its OAuth: test_salesforce_oauth.py; fixtures in conftest.py)."""
from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse

import pytest

from sfdcflex.demo.standins import IamStandIn, SalesforceStandIn
from sfdcflex.demo.standins.demo_data import seed_demo
from sfdcflex.demo.standins.sobjects import id18
from tests.support.standins import API, call, refresh, rest


# -- REST query -----------------------------------------------------------------------------

def test_query_with_in_or_order_by_limit_and_nested_relationships(seeded):
    sf, token = seeded
    status, body = rest(sf, "query",
                        "select Id, Name, account.name, Account.SLA__c from contact "
                        "where Phone in ('(415) 555-0101', '415.555.0102') "
                        "or MobilePhone = '+44 20 7946 0958' order by Name desc limit 2", token)
    assert status == 200 and body["done"] is True and body["totalSize"] == 2
    first, second = body["records"]
    assert [first["Name"], second["Name"]] == ["Sam O'Brien", "Lone Wolf"]
    assert first["attributes"] == {"type": "Contact",
                                   "url": f"{API}/sobjects/Contact/{first['Id']}"}
    assert first["Account"]["Name"] == "Acme" and first["Account"]["SLA__c"] == "Gold"
    assert first["Account"]["attributes"]["type"] == "Account"
    assert second["Account"] is None


def test_query_phone_equality_is_exact_and_finds_unindexed_records(seeded):
    sf, token = seeded
    found = rest(sf, "query", "SELECT Name FROM Contact WHERE Phone = '(415) 555-0109'", token)[1]
    assert [r["Name"] for r in found["records"]] == ["Riley Park"]
    other = rest(sf, "query", "SELECT Name FROM Contact WHERE Phone = '4155550109'", token)[1]
    assert other["totalSize"] == 0


def test_query_string_escapes_are_decoded(seeded):
    sf, token = seeded
    body = rest(sf, "query", r"SELECT Name FROM Contact WHERE Name = 'Sam O\'Brien'", token)[1]
    assert [r["Name"] for r in body["records"]] == ["Sam O'Brien"]
    backslash = rest(sf, "query", r"SELECT Name FROM Contact WHERE Name = 'a\\b\n'", token)
    assert backslash == (200, {"totalSize": 0, "done": True, "records": []})


@pytest.mark.parametrize("text", [
    "SELECT Id FROM Contact WHERE Name = 'x' AND Title = 'y' OR Phone = 'z'",
    "SELECT Id FROM Contact WHERE Name = 'unterminated",
    r"SELECT Id FROM Contact WHERE Name = 'bad \q escape'",
    "SELECT Id FROM Contact WHERE Phone = 4155550101",
    "SELECT Id FROM Contact WHERE Name = 'x'; DELETE",
    "SELECT FROM Contact",
    "",
])
def test_malformed_queries_get_salesforce_error_bodies(seeded, text):
    sf, token = seeded
    status, body = rest(sf, "query", text, token)
    assert status == 400 and body[0]["errorCode"] == "MALFORMED_QUERY" and body[0]["message"]


def test_unknown_field_is_invalid_field(seeded):
    sf, token = seeded
    status, body = rest(sf, "query", "SELECT Nickname__c FROM Contact", token)
    assert status == 400 and body[0]["errorCode"] == "INVALID_FIELD"


def test_users_can_be_queried(seeded):
    sf, token = seeded
    body = rest(sf, "query", "SELECT Id, Username FROM User WHERE Username = 'ALICE@sfdcflex.demo'",
                token)[1]
    assert [r["Username"] for r in body["records"]] == ["alice@sfdcflex.demo"]


# -- REST search ----------------------------------------------------------------------------

def sosl(term: str) -> str:
    return (f"FIND {{{term}}} IN PHONE FIELDS RETURNING Contact(Id, Name, Account.Name "
            "ORDER BY LastModifiedDate DESC LIMIT 10)")


def test_search_matches_phone_digits_across_formats(seeded):
    sf, token = seeded
    for term, name in [("4155550101", "Jane Cooper"), ("14155550102", "Sam O'Brien"),
                       ("02079460958", "Lone Wolf"), ("442079460958", "Lone Wolf")]:
        status, body = rest(sf, "search", sosl(term), token)
        assert status == 200
        names = [r["Name"] for r in body["searchRecords"]]
        assert names == [name], term


def test_search_is_as_fuzzy_as_salesforce_s_full_text_search(seeded):
    """Like SOSL, a phone search finds the same local number under another area code and the
    same digits followed by more (an extension): near misses the caller must weed out."""
    sf, token = seeded
    sf.add_contact("Other Area", phone="(212) 555-0101")
    sf.add_contact("Longer Number", phone="415 555 0101 22")
    sf.add_contact("Other Local", phone="(415) 555-0111")
    names = {r["Name"] for r in rest(sf, "search", sosl("4155550101"), token)[1]["searchRecords"]}
    assert names == {"Jane Cooper", "Other Area", "Longer Number"}


def test_search_does_not_find_unindexed_contacts(seeded):
    sf, token = seeded
    assert rest(sf, "search", sosl("4155550109"), token) == (200, {"searchRecords": []})


def test_search_needs_seven_common_digits(seeded):
    sf, token = seeded
    assert rest(sf, "search", sosl("550101"), token)[1]["searchRecords"] == []


def test_search_refuses_unescaped_reserved_characters(seeded):
    sf, token = seeded
    status, body = rest(sf, "search", sosl("+14155550101"), token)
    assert status == 400 and body[0]["errorCode"] == "MALFORMED_SEARCH"
    status, body = rest(sf, "search", sosl(r"\+14155550101"), token)
    assert status == 200 and body["searchRecords"][0]["Name"] == "Jane Cooper"


# -- REST errors ----------------------------------------------------------------------------

def test_expired_access_tokens_get_invalid_session_id(seeded):
    sf, token = seeded
    sf.expire_access_tokens()
    assert rest(sf, "query", "SELECT Id FROM Contact", token) == (
        401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    assert rest(sf, "search", sosl("4155550101"), "garbage")[0] == 401


def test_request_limit_switch(seeded):
    sf, token = seeded
    sf.request_limit_exceeded = True
    assert rest(sf, "query", "SELECT Id FROM Contact", token) == (
        403, [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])


def test_wrong_api_version_and_unknown_paths_are_not_found(seeded):
    sf, token = seeded
    status, _, body = call(f"{sf.url}/services/data/v41.0/query?q=SELECT+Id+FROM+Contact",
                           headers={"Authorization": f"Bearer {token}"})
    assert (status, json.loads(body)) == (
        404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])
    assert call(sf.url + "/nowhere")[0] == 404
    assert sum(sf.calls.values()) == 0


# -- faults, keep-alive, lifecycle ------------------------------------------------------------

def test_fail_next_answers_the_given_status_body_and_type_then_recovers(seeded):
    sf, token = seeded
    sf.fail_next("search", status=503, body=b"<html>down</html>", content_type="text/html",
                 count=2)
    for _ in range(2):
        status, headers, body = call(f"{sf.url}{API}/search?q=x")
        assert (status, body, headers["content-type"]) == (503, b"<html>down</html>", "text/html")
    assert rest(sf, "search", sosl("4155550101"), token)[0] == 200
    assert sf.calls["search"] == 3


def test_fail_next_without_body_uses_the_salesforce_error_shape(seeded):
    sf, token = seeded
    sf.fail_next("query", status=500)
    status, body = rest(sf, "query", "SELECT Id FROM Contact", token)
    assert status == 500 and body[0]["errorCode"] == "UNKNOWN_EXCEPTION"


def test_reset_closes_the_connection_without_an_answer(seeded):
    sf, token = seeded
    sf.fail_next("query", reset=True)
    with pytest.raises(ConnectionError):
        rest(sf, "query", "SELECT Id FROM Contact", token)
    assert rest(sf, "query", "SELECT Id FROM Contact", token)[0] == 200


def test_stall_delays_the_answer(sf):
    sf.fail_next("token", stall=0.1)
    started = time.monotonic()
    status, _ = refresh(sf, "unknown")
    assert status == 400 and time.monotonic() - started >= 0.1


def test_stop_does_not_wait_for_a_stalled_request():
    sf = SalesforceStandIn().start()
    sf.fail_next("token", stall=30)
    outcome: list[object] = []
    client = threading.Thread(target=lambda: outcome.append(_try(lambda: refresh(sf, "x"))))
    client.start()
    deadline = time.monotonic() + 5
    while sf.calls["token"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)  # bounded wait for the request to reach the stall
    started = time.monotonic()
    sf.stop()
    client.join(timeout=5)
    assert time.monotonic() - started < 3
    assert isinstance(outcome[0], (ConnectionError, http.client.HTTPException))


def _try(action):
    try:
        return action()
    except Exception as error:  # the outcome under test is the exception itself
        return error


def test_keep_alive_serves_several_requests_on_one_connection(seeded):
    sf, token = seeded
    parts = urllib.parse.urlsplit(sf.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        for _ in range(3):
            connection.request("GET", f"{API}/query?q=SELECT+Id+FROM+User",
                               headers={"Authorization": f"Bearer {token}"})
            response = connection.getresponse()
            assert response.status == 200 and response.getheader("Connection") != "close"
            response.read()
            local_port = connection.sock.getsockname()[1]
        assert local_port == connection.sock.getsockname()[1]
    finally:
        connection.close()
    assert sf.calls["query"] == 3


def test_ids_are_18_characters_with_a_valid_checksum(seeded):
    sf, _ = seeded
    user = sf.add_user("dave@sfdcflex.demo", "Dave")
    account = sf.add_account("Zeta")
    contact = sf.add_contact("Zed", account_id=account)
    for record_id, prefix in [(user["user_id"], "005"), (account, "001"), (contact, "003")]:
        assert len(record_id) == 18 and record_id.startswith(prefix)
        assert id18(record_id[:15]) == record_id


# -- demo data ---------------------------------------------------------------------------------

def test_demo_data_covers_the_demo_story():
    with SalesforceStandIn() as sf, IamStandIn() as iam:
        demo = seed_demo(sf, iam)
        contacts = sf.org.all("Contact")
        accounts = sf.org.all("Account")
        assert len(contacts) >= 12 and len(accounts) == 4
        assert all(a["Type"] and a["AccountNumber"] and a["SLA__c"] and a["CustomerPriority__c"]
                   for a in accounts)
        assert any(c["MobilePhone"] and not c["Phone"] for c in contacts)
        assert sf.org.unindexed
        assert [a["can_link"] for a in demo["agents"]] == [True, True, False]
        assert set(iam.agents) == {a["realm_user_id"] for a in demo["agents"]}
        token = sf.issue_tokens("alice@sfdcflex.demo")["access_token"]
        hits = {}
        for task in demo["tasks"]:
            caller = task["caller"]
            if task.get("channel") == "email":
                text = f"FIND {{{caller}}} IN EMAIL FIELDS RETURNING Contact(Id), Lead(Id)"
            else:
                country = next(code for code in ("+1", "+44", "+49", "+61") if caller.startswith(code))
                text = sosl(caller[len(country):]) + ", Lead(Id)"
            hits[caller] = len(rest(sf, "search", text, token)[1]["searchRecords"])
        assert hits["+14155550101"] == 2 and hits["+13125550199"] == 0
        assert hits["+442079460958"] == 2  # two people share the switchboard
        assert hits["priya.natarajan@acme.example"] == 1 and sf.org.all("Lead")
        assert hits["+14155550109"] == 0  # not indexed yet: only the SOQL fallback finds it
        assert all(hits[c] >= 1 for c in hits if c not in ("+13125550199", "+14155550109"))
