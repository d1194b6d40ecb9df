"""What the Salesforce client puts on the wire: its URL settings, its default timeout, what each
call sends (in process, through a scripted Sender) and a network failure's words."""
from __future__ import annotations

import json
import socket
import urllib.parse

import pytest

from sfdcflex.clients.errors import SalesforceError, Unreachable, UrlRefused
from sfdcflex.clients.salesforce import SalesforceClient
from tests.support.errors import caught
from tests.support.salesforce import CLIENT_ID, CLIENT_SECRET, ORG, RECORD_ID, USERNAME
from tests.support.transports import TimeoutsSeen


@pytest.mark.parametrize("urls,setting", [(("http://example.com", None), "SFDC_INSTANCE_URL"),
                                          ((ORG, "http://example.com"), "SFDC_LOGIN_URL")])
def test_a_plain_http_url_is_refused_naming_its_setting(urls, setting):
    """The setting's name is in the line start-up prints."""
    instance_url, login_url = urls
    refused = caught(UrlRefused, SalesforceClient, instance_url, CLIENT_ID, CLIENT_SECRET, login_url=login_url)
    assert refused.setting == setting
    assert str(refused) == (f"{setting} must use https:// (http:// is allowed only for "
                            "localhost / 127.0.0.1 / ::1)")


def test_a_salesforce_call_may_take_eight_seconds_by_default(sf, token):
    transport = TimeoutsSeen()
    try:
        info = SalesforceClient(sf.url, CLIENT_ID, CLIENT_SECRET, transport=transport).userinfo(token)
    finally:
        transport.close()
    assert info["preferred_username"] == USERNAME and transport.timeouts == [8.0]


def test_a_network_failure_names_salesforce():
    """Nothing listens on the port: the failure's words name the service."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = SalesforceClient(f"http://127.0.0.1:{port}", CLIENT_ID, CLIENT_SECRET, timeout=1.0)
    assert caught(SalesforceError, client.userinfo, "any-token").message == \
        "Salesforce connection failed: refused"


def test_a_query_is_a_get_with_the_bearer_token_and_the_soql_in_q(sender, scripted):
    sender.answer(200, {"done": True, "records": [{"Id": "1"}, "not a record"]})
    assert scripted.query("access-1", "SELECT Id FROM Contact WHERE Name = 'A&B'") == [{"Id": "1"}]
    sent = sender.sent[0]
    assert (sent.method, sent.body, sent.headers["Authorization"]) == ("GET", None, "Bearer access-1")
    assert sent.url == (f"{ORG}/services/data/v62.0/query?"
                        + urllib.parse.urlencode({"q": "SELECT Id FROM Contact WHERE Name = 'A&B'"}))


def test_a_refresh_is_a_form_post_that_is_never_sent_twice(sender, scripted):
    """Salesforce rotates refresh tokens: the grant is not idempotent."""
    sender.answer(200, {"access_token": "a2", "id": "i", "instance_url": ORG, "refresh_token": "r2"})
    assert scripted.refresh("r1")["refresh_token"] == "r2"
    sent = sender.sent[0]
    assert (sent.method, sent.url, sent.idempotent) == ("POST", f"{ORG}/services/oauth2/token", False)
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert dict(urllib.parse.parse_qsl(sent.body.decode())) == {
        "grant_type": "refresh_token", "refresh_token": "r1", "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET}


def test_a_create_posts_json_and_an_update_patches_it(sender, scripted):
    sender.answer(201, {"id": RECORD_ID, "success": True, "errors": []})
    sender.answer(204)
    assert scripted.create("t", "Task", {"Subject": "Call"}) == RECORD_ID
    scripted.update("t", "Task", RECORD_ID, {"Subject": "Again"})
    created, updated = sender.sent
    assert (created.method, created.url, json.loads(created.body)) == (
        "POST", f"{ORG}/services/data/v62.0/sobjects/Task", {"Subject": "Call"})
    assert (updated.method, updated.url, json.loads(updated.body)) == (
        "PATCH", f"{ORG}/services/data/v62.0/sobjects/Task/{RECORD_ID}", {"Subject": "Again"})
    assert created.headers["Content-Type"] == "application/json"


def test_a_network_failure_is_a_salesforce_error_in_the_transport_s_words(sender, scripted):
    sender.replies.append(ConnectionResetError())
    failed = caught(SalesforceError, scripted.userinfo, "t")
    assert (type(failed), failed.message, failed.status) == (
        SalesforceError, "Salesforce connection failed: reset", None)
    assert not isinstance(failed, Unreachable)
