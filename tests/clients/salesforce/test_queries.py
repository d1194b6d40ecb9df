"""The Salesforce client's reads: SOQL queries with their paging, SOSL searches, and the quoting
that keeps a caller's words out of the query's syntax, against the Salesforce stand-in."""
from __future__ import annotations

import json
import urllib.parse

import pytest

from sfdcflex.clients.errors import SalesforceError
from sfdcflex.clients.salesforce import soql_quote, sosl_escape
from tests.support.errors import caught
from tests.support.salesforce import answers_next


def test_query_returns_records_with_related_fields(client, sf, tokens):
    account = sf.add_account("Acme", type="Customer", account_number="A-1", sla="Gold", priority="High")
    sf.add_contact("Grace Hopper", account_id=account, title="CTO", phone="(415) 555-0101")
    records = client.query(tokens["access_token"],
                           "SELECT Id, Name, Account.Name FROM Contact WHERE Phone = '(415) 555-0101'")
    assert [(r["Name"], r["Account"]["Name"]) for r in records] == [("Grace Hopper", "Acme")]


def test_search_returns_search_records(client, sf, tokens):
    sf.add_contact("Grace Hopper", phone="(415) 555-0101")
    records = client.search(tokens["access_token"],
                            "FIND {4155550101} IN PHONE FIELDS RETURNING Contact(Id, Name)")
    assert [r["Name"] for r in records] == ["Grace Hopper"]


@pytest.mark.parametrize("hostile", ["O'Brien", "back\\slash", 'say "hi"', "two\nlines\r\t\b\f",
                                     "x' OR Name != 'y", "\\' OR Name != '"])
def test_soql_quote_round_trips_through_the_query_parser(client, sf, tokens, hostile):
    sf.add_contact(hostile)
    sf.add_contact("Bystander")
    soql = f"SELECT Id, Name FROM Contact WHERE Name = {soql_quote(hostile)}"
    records = client.query(tokens["access_token"], soql)
    assert [r["Name"] for r in records] == [hostile]


def test_sosl_escape_escapes_every_reserved_character():
    assert sosl_escape("a?b&c|d!e{f}g[h]i(j)k^l~m*n:o\\p\"q'r+s-t") == \
        "a\\?b\\&c\\|d\\!e\\{f\\}g\\[h\\]i\\(j\\)k\\^l\\~m\\*n\\:o\\\\p\\\"q\\'r\\+s\\-t"
    assert sosl_escape("4155550101") == "4155550101"


@pytest.mark.parametrize("helper,words", [(soql_quote, "soql_quote takes a str"),
                                          (sosl_escape, "sosl_escape takes a str")])
def test_the_quoting_helpers_refuse_a_non_string_in_these_words(helper, words):
    assert str(caught(TypeError, helper, 42)) == words


def test_sosl_escaped_term_survives_the_search_parser(client, sf, tokens):
    records = client.search(tokens["access_token"],
                            f"FIND {{{sosl_escape('a} OR {b')}}} RETURNING Contact(Id, Name)")
    assert records == []


def page(records: list[dict], next_url: str | None) -> bytes:
    body = {"totalSize": 99, "done": next_url is None, "records": records}
    if next_url:
        body["nextRecordsUrl"] = next_url
    return json.dumps(body).encode()


def test_query_follows_next_records_url(client, sf, tokens):
    sf.add_contact("Second Page")
    next_url = "/services/data/v62.0/query?" + urllib.parse.urlencode({"q": "SELECT Id, Name FROM Contact"})
    sf.fail_next("query", status=200, body=page([{"Name": "First Page"}], next_url))
    records = client.query(tokens["access_token"], "SELECT Id, Name FROM Contact")
    assert [r["Name"] for r in records] == ["First Page", "Second Page"]
    assert sf.calls["query"] == 2


def test_query_paging_is_bounded(client, sf, tokens):
    next_url = "/services/data/v62.0/query?q=SELECT+Id+FROM+Contact"
    sf.fail_next("query", status=200, body=page([{"Name": "Again"}], next_url), count=50)
    records = client.query(tokens["access_token"], "SELECT Id FROM Contact")
    assert sf.calls["query"] == len(records) == 5


def test_a_query_answer_without_records_is_said_so(sf, client, token):
    answers_next(sf, "query", 200, {"totalSize": 0, "done": True})
    assert caught(SalesforceError, client.query, token, "SELECT Id FROM Contact").message == \
        "Salesforce's query answer has no records list"


@pytest.mark.parametrize("page", [
    {"done": True, "nextRecordsUrl": "/services/data/v62.0/query/01g000000000001-2000"},
    {"nextRecordsUrl": "/services/data/v62.0/query/01g000000000001-2000"},
    {"done": False, "nextRecordsUrl": "/data/v62.0/query/01g000000000001-2000"}])
def test_paging_stops_when_done_or_unsaid_or_when_the_next_page_is_not_salesforce_s(sf, client, token, page):
    """A missing `done` is read as done."""
    answers_next(sf, "query", 200, {"totalSize": 9, "records": [{"Name": "First Page"}], **page})
    calls = sf.calls["query"]
    assert client.query(token, "SELECT Name FROM Contact") == [{"Name": "First Page"}]
    assert sf.calls["query"] == calls + 1


def test_a_search_answer_without_search_records_is_said_so(sf, client, token):
    answers_next(sf, "search", 200, {"records": []})
    assert caught(SalesforceError, client.search, token, "FIND {x} RETURNING Contact(Id)").message == \
        "Salesforce's search answer has no searchRecords list"
