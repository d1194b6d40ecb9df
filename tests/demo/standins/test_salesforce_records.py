"""One record at the Salesforce stand-in, over REST and on its page, answered as Salesforce does:
GET and HEAD, 404 NOT_FOUND for an unknown or unshared record, 405 METHOD_NOT_ALLOWED, 400
JSON_PARSER_ERROR for a write that is not a JSON object, a deleted record gone everywhere; and the
pages' cookie, methods and dates. (Writes: test_sobject_writes.py; the pages: test_record_pages.py.)
"""
from __future__ import annotations

import json
import urllib.parse

import pytest

from sfdcflex.demo.standins import SalesforceStandIn

from tests.support.record_pages import log_in, page
from tests.support.standins import API, bearer, call, rest, rest_error_of, shared_standin

UNKNOWN_CONTACT = "0035e0000000zzzAAA"


@pytest.fixture(scope="module")
def sf():
    """One stand-in serves the whole module (tests/support/standins.py: shared_standin)."""
    with shared_standin() as server:
        yield server


def test_get_one_record_answers_its_fields_and_attributes(sf):
    url = f"{sf.url}{API}/sobjects/Contact/{sf.jane}"
    status, _, body = call(url, headers=bearer(sf.token))
    record = json.loads(body)
    assert status == 200
    assert record["attributes"] == {"type": "Contact", "url": f"{API}/sobjects/Contact/{sf.jane}"}
    assert (record["Id"], record["Name"], record["Title"]) == (sf.jane, "Jane Cooper", "VP")
    status, headers, body = call(url, "HEAD", headers=bearer(sf.token))
    assert (status, body) == (200, b"") and int(headers["content-length"]) > 0


def test_an_unknown_or_unshared_record_is_404_not_found(sf):
    hidden = sf.add_contact("Private Person")
    sf.writes.rules.hidden.add((sf.alice, hidden))
    for record_id in (UNKNOWN_CONTACT, hidden):
        status, _, body = call(f"{sf.url}{API}/sobjects/Contact/{record_id}", headers=bearer(sf.token))
        assert status == 404 and rest_error_of(json.loads(body)) == "NOT_FOUND"


@pytest.mark.parametrize("method, path, allowed", [
    ("POST", "/query?q=SELECT+Id+FROM+Contact", "HEAD,GET"),
    ("DELETE", "/search?q=FIND+%7B4155550101%7D", "HEAD,GET"),
    ("PATCH", "/sobjects/Task", "HEAD,GET,POST"),
    ("POST", "/sobjects/Task/00T5e0000000zzzAAA", "HEAD,GET,PATCH"),
    ("PUT", "/sobjects/Task/00T5e0000000zzzAAA", "HEAD,GET,POST,PATCH"),
])
def test_a_method_the_resource_does_not_take_is_405_method_not_allowed(sf, method, path, allowed):
    status, _, body = call(f"{sf.url}{API}{path}", method, headers=bearer(sf.token))
    assert status == 405
    assert json.loads(body) == [{"message": f"HTTP Method '{method}' not allowed. Allowed are {allowed}",
                                 "errorCode": "METHOD_NOT_ALLOWED"}]


@pytest.mark.parametrize("body", [b"not json", b"[{\"Subject\": \"Call\"}]", b"\"Call\""])
def test_a_write_body_that_is_not_a_json_object_is_json_parser_error(sf, body):
    status, _, reply = call_raw(sf, "POST", f"{API}/sobjects/Task", body)
    assert status == 400
    refusal = json.loads(reply)
    assert refusal[0]["errorCode"] == "JSON_PARSER_ERROR" and refusal[0]["message"]
    assert sf.org.all("Task") == []


def call_raw(sf: SalesforceStandIn, method: str, path: str, body: bytes) -> tuple[int, dict, bytes]:
    import http.client
    parts = urllib.parse.urlsplit(sf.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        connection.request(method, path, body, {**bearer(sf.token), "Content-Type": "application/json"})
        reply = connection.getresponse()
        return reply.status, dict(reply.getheaders()), reply.read()
    finally:
        connection.close()


def test_a_deleted_record_is_gone_from_queries_reads_and_pages(sf):
    gone = sf.add_contact("Gone Soon", phone="(415) 555-0199")
    sf.org.delete("Contact", gone)
    assert rest(sf, "query", "SELECT Id FROM Contact WHERE Name = 'Gone Soon'", sf.token)[1]["records"] == []
    status, _, body = call(f"{sf.url}{API}/sobjects/Contact/{gone}", headers=bearer(sf.token))
    assert status == 404 and rest_error_of(json.loads(body)) == "NOT_FOUND"
    cookie, _ = log_in(sf)
    assert page(sf, f"/lightning/r/Contact/{gone}/view", cookie)[0] == 404


def test_a_garbled_cookie_header_is_no_session(sf):
    status, headers, _ = page(sf, f"/lightning/r/Contact/{sf.jane}/view", "a,b=1")
    assert status == 302 and headers["location"].startswith("/?startURL=")


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_the_home_page_takes_get_head_and_post_only(sf, method):
    status, headers, body = call(sf.url + "/", method)
    assert status == 405 and headers["allow"] == "GET, HEAD, POST"
    assert b"Method not allowed" in body


def test_a_modified_date_not_in_rest_format_is_shown_as_written(sf):
    odd = sf.add_contact("Odd Date", last_modified="last <Tuesday>")
    cookie, _ = log_in(sf)
    status, _, shown = page(sf, f"/lightning/r/Contact/{odd}/view", cookie)
    assert status == 200 and "<dt>Last modified</dt><dd>last &lt;Tuesday&gt;</dd>" in shown
    status, _, shown = page(sf, f"/lightning/r/Contact/{sf.jane}/view", cookie)
    assert "<dt>Last modified</dt><dd>2024-05-14 09:21 UTC</dd>" in shown
