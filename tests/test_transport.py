"""transport.call: every HTTP answer is a Reply; network failures are BadGateway without URLs."""
from __future__ import annotations

import socket

import pytest

from sfdcflex.runtime.errors import BadGateway, ConfigError
from sfdcflex.demo.standins import SalesforceStandIn
from sfdcflex.clients.transport import call, check_upstream_url, default_transport


@pytest.fixture
def sf():
    with SalesforceStandIn() as standin:
        yield standin


def userinfo_url(sf) -> str:
    return f"{sf.url}/services/oauth2/userinfo"


def bearer(sf) -> dict[str, str]:
    sf.add_user("ada@example.com", "Ada Lovelace")
    return {"Authorization": f"Bearer {sf.issue_tokens('ada@example.com')['access_token']}"}


def test_a_2xx_answer_is_a_reply_with_json_and_lower_cased_headers(sf):
    reply = call(default_transport(), "Salesforce", "GET", userinfo_url(sf), headers=bearer(sf))
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.json()["preferred_username"] == "ada@example.com"
    assert reply.duration_ms > 0


def test_an_error_status_is_returned_not_raised(sf):
    sf.fail_next("userinfo", status=503, body=b'{"oops": true}')
    reply = call(default_transport(), "Salesforce", "GET", userinfo_url(sf))
    assert reply.status == 503
    assert reply.json() == {"oops": True}


def test_an_html_body_is_a_bad_gateway_naming_the_service(sf):
    sf.fail_next("userinfo", status=500, body=b"<html>Maintenance</html>", content_type="text/html")
    reply = call(default_transport(), "Salesforce", "GET", userinfo_url(sf))
    with pytest.raises(BadGateway) as raised:
        reply.json()
    assert "Salesforce" in raised.value.message and "not JSON" in raised.value.message


def test_a_reset_connection_is_a_bad_gateway(sf):
    sf.fail_next("userinfo", reset=True)
    with pytest.raises(BadGateway) as raised:
        call(default_transport(), "Salesforce", "GET", userinfo_url(sf))
    assert raised.value.message == "Salesforce connection failed: reset"


def test_a_stalled_service_times_out_with_the_time_in_the_message(sf):
    sf.fail_next("userinfo", stall=5)
    with pytest.raises(BadGateway) as raised:
        call(default_transport(), "Salesforce", "GET", userinfo_url(sf), timeout=0.2)
    assert raised.value.message == "Salesforce did not answer in 0.2 s"


def test_a_refused_connection_is_a_bad_gateway_without_the_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/services/oauth2/token?secretish=1"
    with pytest.raises(BadGateway) as raised:
        call(default_transport(), "Salesforce", "POST", url, form={"a": "b"})
    assert raised.value.message == "Salesforce connection failed: refused"
    assert str(port) not in raised.value.message


class _NameNotFound:
    """A transport that fails the way resolving an unknown host name fails."""

    def send(self, method, url, headers, body, *, timeout, idempotent):
        raise socket.gaierror(-2, "Name or service not known")


def test_an_unknown_host_is_a_bad_gateway():
    with pytest.raises(BadGateway) as raised:
        call(_NameNotFound(), "Twilio Sync", "GET", "http://127.0.0.1:9/x")
    assert raised.value.message == "Twilio Sync connection failed: host name not found"


def test_redirects_are_returned_not_followed(sf):
    sf.fail_next("userinfo", status=302, body=b"")
    reply = call(default_transport(), "Salesforce", "GET", userinfo_url(sf))
    assert reply.status == 302


def test_an_oversized_body_is_refused(sf):
    sf.fail_next("userinfo", status=200, body=b"x" * (8 * 1024 * 1024 + 10))
    with pytest.raises(BadGateway) as raised:
        call(default_transport(), "Salesforce", "GET", userinfo_url(sf))
    assert "MiB" in raised.value.message


@pytest.mark.parametrize("url", ["https://login.salesforce.com", "http://127.0.0.1:8080",
                                 "http://localhost:1/", "http://[::1]:9000"])
def test_https_and_loopback_http_urls_are_accepted(url):
    assert check_upstream_url("SFDC_LOGIN_URL", url) == url.rstrip("/")


@pytest.mark.parametrize("url", ["http://login.salesforce.com", "ftp://example.com", "example.com",
                                 "https://user:pw@example.com", "https://example.com/?token=1", ""])
def test_other_urls_stop_start_up_naming_the_setting(url):
    with pytest.raises(ConfigError) as raised:
        check_upstream_url("SFDC_LOGIN_URL", url)
    assert "SFDC_LOGIN_URL" in str(raised.value)
    assert "pw" not in str(raised.value)
