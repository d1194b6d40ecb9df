"""What the Salesforce stand-in's tests share: one request on a fresh connection, the OAuth
authorize URL with a PKCE challenge, as Salesforce's web-server flow builds it, a refresh, a REST
query or search and the shape of its error, and a stand-in seeded for a whole test module."""
from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import http.client
import json
import urllib.parse
from collections.abc import Iterator

from sfdcflex.demo.standins import SalesforceStandIn

REDIRECT = "http://127.0.0.1:9/salesforce-oauth?from=test"
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
API = "/services/data/v62.0"
OTHER_ORG = "00D5e000000ZzZzEAA"
BERLIN = datetime.timezone(datetime.timedelta(hours=2))


def call(url: str, method: str = "GET", *, form: dict | None = None,
         headers: dict | None = None) -> tuple[int, dict, bytes]:
    """One request on a fresh connection: (status, lower-cased headers, body)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    body = urllib.parse.urlencode(form) if form is not None else None
    sent = dict(headers or {})
    if form is not None:
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        path = parts.path + ("?" + parts.query if parts.query else "")
        connection.request(method, path, body, sent)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def challenge(verifier: str = VERIFIER) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_url(sf: SalesforceStandIn, **overrides: str) -> str:
    params = {"response_type": "code", "client_id": sf.client_id, "redirect_uri": REDIRECT,
              "state": "st-123", "scope": "api refresh_token",
              "code_challenge": challenge(), "code_challenge_method": "S256", **overrides}
    params = {name: value for name, value in params.items() if value is not None}
    return f"{sf.url}/services/oauth2/authorize?{urllib.parse.urlencode(params)}"


def query_of(location: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))


def refresh(sf: SalesforceStandIn, refresh_token: str) -> tuple[int, dict]:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token,
            "client_id": sf.client_id, "client_secret": sf.client_secret}
    status, _, body = call(sf.url + "/services/oauth2/token", "POST", form=form)
    return status, json.loads(body)


def rest(sf: SalesforceStandIn, kind: str, text: str, token: str) -> tuple[int, object]:
    url = f"{sf.url}{API}/{kind}?{urllib.parse.urlencode({'q': text})}"
    status, _, body = call(url, headers={"Authorization": f"Bearer {token}"})
    return status, json.loads(body)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def rest_error_of(body: object) -> str:
    """The errorCode of a Salesforce REST error body, checking its shape on the way."""
    assert isinstance(body, list) and len(body) == 1
    assert set(body[0]) == {"message", "errorCode"} and body[0]["message"]
    return body[0]["errorCode"]


@contextlib.contextmanager
def shared_standin() -> Iterator[SalesforceStandIn]:
    """A started stand-in for a whole test module: alice and bob, mallory in another org, Acme's Jane
    Cooper (last modified at a time in Berlin), Globex's Sam Brown, the lone Lone Wolf, and alice's
    access token; their ids are its attributes (`sf.jane`, `sf.token`)."""
    with SalesforceStandIn() as server:
        server.alice = server.add_user("alice@sfdcflex.demo", "Alice Johnson")["user_id"]
        server.bob = server.add_user("bob@sfdcflex.demo", "Bob Stone")["user_id"]
        server.mallory = server.add_user("mallory@other.org", "Mallory Other",
                                         org_id=OTHER_ORG)["user_id"]
        acme = server.add_account("Acme")
        globex = server.add_account("Globex")
        server.jane = server.add_contact(
            "Jane Cooper", account_id=acme, title="VP", phone="(415) 555-0101",
            last_modified=datetime.datetime(2024, 5, 14, 11, 21, 7, tzinfo=BERLIN))
        server.sam = server.add_contact("Sam Brown", account_id=globex, title="CTO",
                                        phone="(415) 555-0102")
        server.lone = server.add_contact("Lone Wolf", mobile_phone="+44 20 7946 0958")
        server.token = server.issue_tokens("alice@sfdcflex.demo")["access_token"]
        yield server
