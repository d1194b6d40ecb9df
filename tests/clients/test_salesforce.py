"""The Salesforce client against the Salesforce stand-in: OAuth with PKCE, rotation, REST errors."""
from __future__ import annotations

import base64
import json
import hashlib
import secrets
import urllib.parse

import pytest

from sfdcflex.runtime.errors import BadGateway, BadRequest, NotFound
from sfdcflex.clients.salesforce import (InvalidGrant, RequestLimitExceeded, SalesforceClient, SalesforceError,
                                 SessionExpired, soql_quote, sosl_escape)
from sfdcflex.demo.standins import SalesforceStandIn, submit_consent

CLIENT_ID, CLIENT_SECRET = "demo-client-id", "demo-client-secret"
REDIRECT_URI = "http://127.0.0.1:3000/oauth-callback"
USERNAME = "ada@example.com"


@pytest.fixture
def sf():
    with SalesforceStandIn() as standin:
        standin.add_user(USERNAME, "Ada Lovelace")
        yield standin


@pytest.fixture
def client(sf):
    return SalesforceClient(sf.url, CLIENT_ID, CLIENT_SECRET, timeout=2.0)


@pytest.fixture
def tokens(sf):
    return sf.issue_tokens(USERNAME)


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def consent_code(client: SalesforceClient, challenge: str, state: str = "state-1") -> str:
    location = submit_consent(client.authorize_url(REDIRECT_URI, state, challenge), USERNAME)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    assert query["state"] == [state]
    return query["code"][0]


# --- OAuth ---------------------------------------------------------------------------------

def test_authorize_url_asks_for_a_code_with_pkce_s256(client, sf):
    url = client.authorize_url(REDIRECT_URI, "st", "challenge")
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{sf.url}/services/oauth2/authorize"
    assert query == {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI,
                     "state": "st", "scope": "api refresh_token", "code_challenge": "challenge",
                     "code_challenge_method": "S256"}


def test_login_url_hosts_oauth_when_given(sf):
    client = SalesforceClient("https://example.my.salesforce.com", CLIENT_ID, CLIENT_SECRET, login_url=sf.url)
    assert client.authorize_url(REDIRECT_URI, "s", "c").startswith(f"{sf.url}/services/oauth2/authorize?")


def test_exchange_code_with_the_right_verifier_gives_tokens(client):
    verifier, challenge = pkce_pair()
    answer = client.exchange_code(consent_code(client, challenge), REDIRECT_URI, verifier)
    assert answer["access_token"] and answer["refresh_token"] and answer["instance_url"] and answer["id"]
    assert client.userinfo(answer["access_token"])["preferred_username"] == USERNAME


def test_exchange_with_a_wrong_verifier_is_an_invalid_code(client):
    _, challenge = pkce_pair()
    with pytest.raises(BadRequest) as raised:
        client.exchange_code(consent_code(client, challenge), REDIRECT_URI, pkce_pair()[0])
    assert raised.value.status == 400 and raised.value.code == "invalid_code"


def test_a_code_works_once(client):
    verifier, challenge = pkce_pair()
    code = consent_code(client, challenge)
    client.exchange_code(code, REDIRECT_URI, verifier)
    with pytest.raises(BadRequest) as raised:
        client.exchange_code(code, REDIRECT_URI, verifier)
    assert raised.value.code == "invalid_code"


def test_a_wrong_client_secret_tells_the_operator(sf):
    client = SalesforceClient(sf.url, CLIENT_ID, "wrong-secret-value")
    verifier, challenge = pkce_pair()
    with pytest.raises(BadGateway) as raised:
        client.exchange_code(consent_code(client, challenge), REDIRECT_URI, verifier)
    assert "SFDC_CLIENT_ID" in raised.value.message and "SFDC_CLIENT_SECRET" in raised.value.message
    assert "wrong-secret-value" not in raised.value.message


def test_refresh_rotates_the_refresh_token(client, tokens):
    first = client.refresh(tokens["refresh_token"])
    assert first["access_token"] != tokens["access_token"]
    assert first["refresh_token"] != tokens["refresh_token"]
    second = client.refresh(first["refresh_token"])
    assert client.userinfo(second["access_token"])["preferred_username"] == USERNAME


def test_reusing_a_rotated_refresh_token_kills_the_link(client, tokens):
    newer = client.refresh(tokens["refresh_token"])
    with pytest.raises(InvalidGrant) as raised:
        client.refresh(tokens["refresh_token"])
    assert isinstance(raised.value, NotFound) and raised.value.status == 404
    assert raised.value.code == "not_linked" and "connect Salesforce again" in raised.value.message
    assert tokens["refresh_token"] not in raised.value.message
    with pytest.raises(InvalidGrant):
        client.refresh(newer["refresh_token"])


def test_a_token_answer_without_access_token_is_a_bad_gateway(client, sf, tokens):
    sf.fail_next("token", status=200, body=b'{"token_type": "Bearer"}')
    with pytest.raises(SalesforceError):
        client.refresh(tokens["refresh_token"])


def test_a_token_endpoint_html_page_is_a_bad_gateway(client, sf, tokens):
    sf.fail_next("token", status=503, body=b"<html>Down for maintenance</html>", content_type="text/html")
    with pytest.raises(SalesforceError) as raised:
        client.refresh(tokens["refresh_token"])
    assert "503" in raised.value.message


def test_revoke_kills_the_refresh_token_and_revoking_again_is_fine(client, tokens):
    client.revoke(tokens["refresh_token"])
    client.revoke(tokens["refresh_token"])
    with pytest.raises(InvalidGrant):
        client.refresh(tokens["refresh_token"])


def test_userinfo_with_an_expired_token_is_session_expired(client, sf, tokens):
    info = client.userinfo(tokens["access_token"])
    assert info["organization_id"].startswith("00D5e000000AbCd")
    sf.expire_access_tokens()
    with pytest.raises(SessionExpired):
        client.userinfo(tokens["access_token"])


# --- REST ----------------------------------------------------------------------------------

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


def test_sosl_escaped_term_survives_the_search_parser(client, sf, tokens):
    records = client.search(tokens["access_token"],
                            f"FIND {{{sosl_escape('a} OR {b')}}} RETURNING Contact(Id, Name)")
    assert records == []


def test_an_expired_session_is_session_expired(client, sf, tokens):
    sf.expire_access_tokens()
    with pytest.raises(SessionExpired):
        client.query(tokens["access_token"], "SELECT Id FROM Contact")


def test_another_401_is_a_salesforce_error_not_a_refresh(client, sf, tokens):
    sf.fail_next("query", status=401, body=b'[{"message":"Bad header","errorCode":"INVALID_AUTH_HEADER"}]')
    with pytest.raises(SalesforceError) as raised:
        client.query(tokens["access_token"], "SELECT Id FROM Contact")
    assert not isinstance(raised.value, SessionExpired)
    assert "INVALID_AUTH_HEADER" in raised.value.message and "Bad header" in raised.value.message


def test_request_limit_exceeded_is_said_as_such(client, sf, tokens):
    sf.request_limit_exceeded = True
    with pytest.raises(RequestLimitExceeded) as raised:
        client.search(tokens["access_token"], "FIND {4155550101} RETURNING Contact(Id)")
    assert raised.value.status == 502 and raised.value.code == "salesforce_request_limit"
    assert "limit" in raised.value.message


def test_a_malformed_query_names_salesforce_error_code(client, tokens):
    with pytest.raises(SalesforceError) as raised:
        client.query(tokens["access_token"], "SELECT FROM WHERE")
    assert raised.value.code == "salesforce_error" and "MALFORMED_QUERY" in raised.value.message


@pytest.mark.parametrize("fault", [{"status": 500, "body": b"<html>oops</html>", "content_type": "text/html"},
                                   {"reset": True}, {"stall": 3}])
def test_upstream_trouble_is_a_salesforce_error(sf, tokens, fault):
    client = SalesforceClient(sf.url, CLIENT_ID, CLIENT_SECRET, timeout=0.3)
    sf.fail_next("query", **fault)
    with pytest.raises(SalesforceError) as raised:
        client.query(tokens["access_token"], "SELECT Id FROM Contact")
    assert raised.value.status == 502 and tokens["access_token"] not in raised.value.message


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


def test_other_token_endpoint_errors_name_salesforces_error(client, sf, tokens):
    sf.fail_next("token", status=400, body=b'{"error":"unsupported_grant_type","error_description":"nope"}')
    with pytest.raises(SalesforceError) as raised:
        client.refresh(tokens["refresh_token"])
    assert "unsupported_grant_type" in raised.value.message and "nope" in raised.value.message


def test_userinfo_outage_is_a_salesforce_error_not_an_expiry(client, sf, tokens):
    sf.fail_next("userinfo", status=503)
    with pytest.raises(SalesforceError) as raised:
        client.userinfo(tokens["access_token"])
    assert not isinstance(raised.value, SessionExpired) and "503" in raised.value.message


def test_revoke_during_an_outage_is_a_salesforce_error(client, sf, tokens):
    sf.fail_next("revoke", status=503)
    with pytest.raises(SalesforceError):
        client.revoke(tokens["refresh_token"])
