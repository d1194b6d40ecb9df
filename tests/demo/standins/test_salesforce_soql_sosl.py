"""SOQL and SOSL as the Salesforce stand-in parses them, over real HTTP: WHERE, ORDER BY and
RETURNING, dates in Salesforce's UTC format, and the 400 errors Salesforce answers (a JSON array of
{"message", "errorCode"}: MALFORMED_QUERY, MALFORMED_SEARCH, INVALID_TYPE, INVALID_FIELD).
"""
from __future__ import annotations

import pytest

from tests.support.standins import API, rest, rest_error_of, shared_standin


@pytest.fixture(scope="module")
def sf():
    """One stand-in serves the whole module (tests/support/standins.py: shared_standin)."""
    with shared_standin() as server:
        yield server


def names(body: dict) -> list[str]:
    return [record["Name"] for record in body["records"]]


# Other tests add contacts to the shared org; these queries look at the fixture's three.
THREE = "Name IN ('Jane Cooper', 'Sam Brown', 'Lone Wolf')"


@pytest.mark.parametrize("where, expected", [
    ("(Title = 'VP' OR Title = 'CTO') AND Name NOT IN ('Sam Brown')", ["Jane Cooper"]),
    ("Title != 'VP'", ["Lone Wolf", "Sam Brown"]),
    ("Title <> 'VP' AND (Name = 'Sam Brown')", ["Sam Brown"]),
    ("Account.Name = 'globex'", ["Sam Brown"]),
    ("Title = null", ["Lone Wolf"]),
])
def test_where_with_parentheses_not_in_and_not_equal(sf, where, expected):
    status, body = rest(sf, "query", f"SELECT Name FROM Contact WHERE {THREE} AND ({where}) ORDER BY Name", sf.token)
    assert (status, names(body)) == (200, expected)


@pytest.mark.parametrize("order, expected", [
    ("Title", ["Lone Wolf", "Sam Brown", "Jane Cooper"]),          # ASC puts nulls first
    ("Title ASC NULLS FIRST", ["Lone Wolf", "Sam Brown", "Jane Cooper"]),
    ("Title DESC", ["Jane Cooper", "Sam Brown", "Lone Wolf"]),     # DESC puts nulls last
    ("Title DESC NULLS FIRST", ["Lone Wolf", "Jane Cooper", "Sam Brown"]),
    ("Title ASC NULLS LAST", ["Sam Brown", "Jane Cooper", "Lone Wolf"]),
    ("Account.Name DESC NULLS LAST, Name", ["Sam Brown", "Jane Cooper", "Lone Wolf"]),
    ("Account.Name NULLS FIRST, Name DESC", ["Lone Wolf", "Jane Cooper", "Sam Brown"]),
])
def test_order_by_directions_nulls_and_several_keys(sf, order, expected):
    status, body = rest(sf, "query", f"SELECT Name FROM Contact WHERE {THREE} ORDER BY {order}", sf.token)
    assert (status, names(body)) == (200, expected)


@pytest.mark.parametrize("text", [
    # Each is followed by a clause that would parse if the broken part were skipped over.
    "SELECT Id FROM Contact WHERE Name = ORDER BY Name",       # no value
    "SELECT Id FROM Contact WHERE Name = ) LIMIT 5",           # a value that is no literal
    "SELECT Id FROM Contact WHERE Name LIMIT 5",               # no operator
    "SELECT Id FROM Contact WHERE Name 'x'",
    "SELECT Id FROM Contact WHERE (Name = 'x'",                # unclosed parenthesis
    "SELECT Id FROM Contact ORDER BY Name NULLS LIMIT 5",      # NULLS neither FIRST nor LAST
    "SELECT Id FROM Contact ORDER BY Name NULLS LOW",
    "SELECT Id FROM Contact LIMIT",                            # LIMIT without a number
    "SELECT Id FROM Contact LIMIT many",
    "SELECT Id FROM Contact WHERE Name = 'x' )",               # something after the end
])
def test_malformed_soql_is_400_malformed_query(sf, text):
    status, body = rest(sf, "query", text, sf.token)
    assert (status, rest_error_of(body)) == (400, "MALFORMED_QUERY")


@pytest.mark.parametrize("text, code", [
    ("SELECT Id FROM Opportunity__x", "INVALID_TYPE"),
    ("SELECT Bogus.Name FROM Contact", "INVALID_FIELD"),
    ("SELECT Account.Name.Owner FROM Contact", "INVALID_FIELD"),
])
def test_unknown_objects_and_relationships_are_refused_by_name(sf, text, code):
    status, body = rest(sf, "query", text, sf.token)
    assert (status, rest_error_of(body)) == (400, code)


def test_a_last_modified_datetime_is_stored_in_salesforces_utc_format(sf):
    status, body = rest(sf, "query", "SELECT LastModifiedDate FROM Contact WHERE Name = 'Jane Cooper'", sf.token)
    assert status == 200
    assert [r["LastModifiedDate"] for r in body["records"]] == ["2024-05-14T09:21:07.000+0000"]


@pytest.mark.parametrize("text", [
    "FND {4155550101} RETURNING Contact",           # not FIND {
    "FIND {4155550101 RETURNING Contact",           # no closing brace
    "FIND {a} RETURNING Contact",                   # a one-character term
    "FIND {4155550101} IN ADDRESS FIELDS RETURNING Contact",   # no such search group
])
def test_malformed_sosl_is_400_malformed_search(sf, text):
    status, body = rest(sf, "search", text, sf.token)
    assert (status, rest_error_of(body)) == (400, "MALFORMED_SEARCH")


def test_returning_an_object_without_fields_answers_ids(sf):
    status, body = rest(sf, "search", "FIND {4155550101} IN PHONE FIELDS RETURNING Contact, Account(Name)", sf.token)
    assert status == 200
    assert body["searchRecords"] == [{"attributes": {"type": "Contact",
                                                     "url": f"{API}/sobjects/Contact/{sf.jane}"},
                                      "Id": sf.jane}]


def test_find_without_returning_searches_every_object(sf):
    lead = sf.add_lead("Grace Prospect", "Hopper Industries", phone="+1 415 555 0102")
    status, body = rest(sf, "search", "FIND {4155550102}", sf.token)
    assert status == 200
    assert sorted((r["attributes"]["type"], r["Id"]) for r in body["searchRecords"]) == [
        ("Contact", sf.sam), ("Lead", lead)]
    assert all(set(r) == {"attributes", "Id"} for r in body["searchRecords"])
