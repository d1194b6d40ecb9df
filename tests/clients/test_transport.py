"""transport.call: every HTTP answer is a Reply; network failures are Unreachable, without URLs."""
from __future__ import annotations

import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sfdcflex.clients.errors import NotJson, Unreachable, UrlRefused
from sfdcflex.runtime.errors import ConfigError
from sfdcflex.demo.standins import SalesforceStandIn
from sfdcflex.clients.pool import Transport, tls_context
from sfdcflex.clients.transport import call, check_upstream_url, default_transport
from sfdcflex.demo.standins.tls import make_self_signed, openssl_missing_reason
from tests.support.senders import ScriptedSender


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


def test_an_html_body_is_not_json_naming_the_service(sf):
    sf.fail_next("userinfo", status=500, body=b"<html>Maintenance</html>", content_type="text/html")
    reply = call(default_transport(), "Salesforce", "GET", userinfo_url(sf))
    with pytest.raises(NotJson) as raised:
        reply.json()
    assert "Salesforce" in raised.value.message and "not JSON" in raised.value.message
    assert raised.value.status == 500


def test_a_reset_connection_is_unreachable(sf):
    sf.fail_next("userinfo", reset=True)
    with pytest.raises(Unreachable) as raised:
        call(default_transport(), "Salesforce", "GET", userinfo_url(sf))
    assert raised.value.message == "Salesforce connection failed: reset"


def test_a_stalled_service_times_out_with_the_time_in_the_message(sf):
    sf.fail_next("userinfo", stall=5)
    with pytest.raises(Unreachable) as raised:
        call(default_transport(), "Salesforce", "GET", userinfo_url(sf), timeout=0.1)
    assert raised.value.message == "Salesforce did not answer in 0.1 s"


def test_an_answer_trickling_in_ends_at_the_calls_time_limit(sf):
    """A socket timeout bounds one read: an upstream sending a byte every 50 ms would keep the
    call alive for its whole answer. The time limit is the call's, all reads together."""
    sf.fail_next("userinfo", trickle=0.05)
    started = time.monotonic()
    with pytest.raises(Unreachable) as raised:
        call(default_transport(), "Salesforce", "GET", userinfo_url(sf), headers=bearer(sf), timeout=0.2)
    assert raised.value.message == "Salesforce did not answer in 0.2 s"
    assert time.monotonic() - started < 1.0


def test_a_refused_connection_is_unreachable_without_the_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/services/oauth2/token?secretish=1"
    with pytest.raises(Unreachable) as raised:
        call(default_transport(), "Salesforce", "POST", url, form={"a": "b"})
    assert raised.value.message == "Salesforce connection failed: refused"
    assert str(port) not in raised.value.message


class _NameNotFound:
    """A transport that fails the way resolving an unknown host name fails."""

    def send(self, method, url, headers, body, *, timeout, idempotent):
        raise socket.gaierror(-2, "Name or service not known")


def test_an_unknown_host_is_unreachable():
    with pytest.raises(Unreachable) as raised:
        call(_NameNotFound(), "Twilio Sync", "GET", "http://127.0.0.1:9/x")
    assert raised.value.message == "Twilio Sync connection failed: host name not found"


def test_redirects_are_returned_not_followed(sf):
    sf.fail_next("userinfo", status=302, body=b"")
    reply = call(default_transport(), "Salesforce", "GET", userinfo_url(sf))
    assert reply.status == 302


def test_an_oversized_body_is_refused(sf):
    sf.fail_next("userinfo", status=200, body=b"x" * (8 * 1024 * 1024 + 10))
    with pytest.raises(Unreachable) as raised:
        call(default_transport(), "Salesforce", "GET", userinfo_url(sf))
    assert "MiB" in raised.value.message


@pytest.mark.parametrize("url", ["https://login.salesforce.com", "http://127.0.0.1:8080",
                                 "http://localhost:1/", "http://[::1]:9000"])
def test_https_and_loopback_http_urls_are_accepted(url):
    assert check_upstream_url("SFDC_LOGIN_URL", url) == url.rstrip("/")


@pytest.mark.parametrize("url", ["http://login.salesforce.com", "ftp://example.com", "example.com",
                                 "https://user:pw@example.com", "https://example.com/?token=1", ""])
def test_other_urls_stop_start_up_naming_the_setting(url):
    with pytest.raises(UrlRefused) as raised:
        check_upstream_url("SFDC_LOGIN_URL", url)
    assert raised.value.setting == "SFDC_LOGIN_URL" and "SFDC_LOGIN_URL" in str(raised.value)
    assert "pw" not in str(raised.value)


# --- the keep-alive pool ----------------------------------------------------------------------

def test_calls_share_one_kept_alive_connection(sf):
    transport = default_transport()
    for _ in range(5):
        assert call(transport, "Salesforce", "GET", userinfo_url(sf), headers=bearer(sf)).status == 200
    assert sf.connections_accepted == 1 and transport.connections_opened == 1
    assert transport.idle_count() == 1


def test_a_connection_idle_too_long_is_closed_not_reused(sf):
    transport = Transport(idle_seconds=0.0)  # every idle connection is already too old
    for _ in range(3):
        assert call(transport, "Salesforce", "GET", userinfo_url(sf)).status == 403
    assert sf.connections_accepted == 3


def test_a_request_that_must_not_repeat_waits_for_no_old_connection(sf):
    transport = Transport(just_used_seconds=0.0)
    url = f"{sf.url}/services/oauth2/token"
    for _ in range(3):
        assert call(transport, "Salesforce", "POST", url, form={"grant_type": "x"}).status == 400
    assert sf.connections_accepted == 3  # each POST on a fresh connection
    assert call(transport, "Salesforce", "GET", userinfo_url(sf)).status == 403
    assert sf.connections_accepted == 3  # a read takes an idle one


def test_a_post_right_after_a_call_reuses_its_connection(sf):
    transport = default_transport()
    assert call(transport, "Salesforce", "GET", userinfo_url(sf)).status == 403
    url = f"{sf.url}/services/oauth2/token"
    assert call(transport, "Salesforce", "POST", url, form={"grant_type": "x"}).status == 400
    assert sf.connections_accepted == 1


def test_a_post_reset_on_a_reused_connection_is_not_sent_again(sf):
    transport = default_transport()
    assert call(transport, "Salesforce", "GET", userinfo_url(sf)).status == 403
    sf.fail_next("token", reset=True)
    with pytest.raises(Unreachable, match="reset"):
        call(transport, "Salesforce", "POST", f"{sf.url}/services/oauth2/token", form={"a": "b"})
    assert sf.calls["token"] == 1 and transport.retries == 0


def test_a_server_closing_idle_connections_costs_no_error(sf):
    transport = default_transport()
    assert call(transport, "Salesforce", "GET", userinfo_url(sf)).status == 403
    sf.drop_connections()
    assert call(transport, "Salesforce", "GET", userinfo_url(sf)).status == 403
    assert sf.calls["userinfo"] == 2 and sf.connections_accepted == 2


def test_idle_connections_are_bounded_per_origin(sf):
    transport = Transport(max_idle_per_origin=2)
    sf.fail_next("userinfo", stall=0.15, status=403, count=4)
    callers = [threading.Thread(target=call, args=(transport, "Salesforce", "GET", userinfo_url(sf)))
               for _ in range(4)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(10)
    assert sf.connections_accepted == 4 and transport.idle_count() == 2


class _OldServerHandler(BaseHTTPRequestHandler):
    """HTTP/1.0 without keep-alive, or HTTP/1.1 with `Connection: close`, by path."""

    def do_GET(self) -> None:
        if self.path == "/close":
            self.protocol_version = "HTTP/1.1"
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if self.path == "/close":
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize("path", ["/http10", "/close"])
def test_http10_and_connection_close_answers_are_not_pooled(path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OldServerHandler)
    accepted = []
    server.verify_request = lambda request, address: accepted.append(address) or True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.005}, daemon=True)
    thread.start()
    try:
        transport = default_transport()
        for _ in range(3):
            reply = call(transport, "Salesforce", "GET", f"http://127.0.0.1:{server.server_port}{path}")
            assert reply.json() == {"ok": True}
        assert len(accepted) == 3 and transport.idle_count() == 0
    finally:
        server.shutdown()
        server.server_close()


# --- TLS ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    if openssl_missing_reason():
        pytest.skip(openssl_missing_reason())
    return make_self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_sf(certificate):
    standin = SalesforceStandIn()
    standin.start(tls=certificate)
    yield standin
    standin.stop()


def test_https_with_the_test_ca_keeps_one_verified_connection(tls_sf, certificate):
    transport = Transport(ca_file=str(certificate[0]))
    for _ in range(3):
        assert call(transport, "Salesforce", "GET", userinfo_url(tls_sf)).status == 403
    assert tls_sf.url.startswith("https://localhost:") and tls_sf.connections_accepted == 1
    assert tls_context(str(certificate[0])) is tls_context(str(certificate[0]))  # made once


def test_https_refuses_an_unknown_ca_and_a_wrong_host_name(tls_sf, certificate):
    with pytest.raises(Unreachable, match="TLS handshake or certificate failed"):
        call(default_transport(), "Salesforce", "GET", userinfo_url(tls_sf))
    by_address = userinfo_url(tls_sf).replace("https://localhost:", "https://127.0.0.1:")
    with pytest.raises(Unreachable, match="TLS handshake or certificate failed"):
        call(Transport(ca_file=str(certificate[0])), "Salesforce", "GET", by_address)


def test_a_post_never_goes_out_on_a_connection_the_server_has_closed(sf):
    transport = default_transport()
    assert call(transport, "Salesforce", "GET", userinfo_url(sf)).status == 403
    sf.drop_connections()  # within the "just used" second: the pool must notice the close itself
    url = f"{sf.url}/services/oauth2/token"
    assert call(transport, "Salesforce", "POST", url, form={"grant_type": "x"}).status == 400
    assert sf.calls["token"] == 1 and transport.retries == 0


def _settings(sf, **extra) -> dict[str, str]:
    return {"ACCOUNT_SID": "AC" + "0" * 32, "AUTH_TOKEN": "t", "SFDC_INSTANCE_URL": sf.url,
            "SFDC_ORG_ID": sf.org_id, "SFDC_CLIENT_ID": sf.client_id,
            "SFDC_CLIENT_SECRET": sf.client_secret, "FLEX_INSTANCE_URL": "https://flex.example.com",
            "STATE_SECRET": "s" * 40, **extra}


def test_the_upstream_ca_file_setting_reaches_the_clients(tls_sf, certificate, tmp_path):
    from sfdcflex.config import load_config
    from sfdcflex.assembly import build_services
    settings = _settings(tls_sf, UPSTREAM_CA_FILE=str(certificate[0]),
                         TOKEN_STORE_PATH=str(tmp_path / "tokens.json"))
    services = build_services(load_config(settings), public_url="http://127.0.0.1:9")
    tls_sf.add_user("ada@example.com", "Ada Lovelace")
    access = tls_sf.issue_tokens("ada@example.com")["access_token"]
    assert services.salesforce.userinfo(access)["preferred_username"] == "ada@example.com"


def test_an_upstream_ca_file_that_is_not_there_stops_start_up(sf, tmp_path):
    from sfdcflex.config import load_config
    with pytest.raises(ConfigError, match="UPSTREAM_CA_FILE"):
        load_config(_settings(sf, UPSTREAM_CA_FILE=str(tmp_path / "missing.pem")))


# --- an HTTPS proxy from the environment ---------------------------------------------------------

def test_https_proxy_settings_are_read_like_urllib_read_them(monkeypatch):
    from sfdcflex.clients.pool import _proxy_for
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:3128")
    monkeypatch.setenv("no_proxy", "example.org")
    assert _proxy_for("https", "login.salesforce.com") == ("127.0.0.1", 3128)
    assert _proxy_for("https", "iam.example.org") is None
    assert _proxy_for("http", "127.0.0.1") is None  # plain http is for loopback stand-ins only


class _ConnectProxy(socketserver.ThreadingTCPServer):
    """A CONNECT-only forward proxy that tunnels to 127.0.0.1 and remembers what it was asked."""

    daemon_threads = True
    asked: list[str]


class _Tunnel(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.request.recv(4096)
        target = head.split(b" ")[1].decode()
        self.server.asked.append(target)
        upstream = socket.create_connection(("127.0.0.1", int(target.rsplit(":", 1)[1])))
        self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        pump = threading.Thread(target=self._pipe, args=(upstream, self.request), daemon=True)
        pump.start()
        self._pipe(self.request, upstream)
        pump.join(5)

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
            target.shutdown(socket.SHUT_WR)
        except OSError:  # the other side went first
            pass


def test_https_goes_through_the_environments_proxy_and_still_verifies(tls_sf, certificate, monkeypatch):
    proxy = _ConnectProxy(("127.0.0.1", 0), _Tunnel)
    proxy.asked = []
    threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.005}, daemon=True).start()
    try:
        monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{proxy.server_address[1]}")
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        transport = Transport(ca_file=str(certificate[0]))
        for _ in range(2):
            assert call(transport, "Salesforce", "GET", userinfo_url(tls_sf)).status == 403
        port = tls_sf.url.rsplit(":", 1)[1]
        assert proxy.asked == [f"localhost:{port}"]  # one tunnel, kept alive, named by host name
        transport.close()
    finally:
        proxy.shutdown()
        proxy.server_close()


# --- what call sends, in process --------------------------------------------------------------------

@pytest.mark.parametrize("method,idempotent", [("GET", True), ("DELETE", True), ("PUT", True),
                                               ("POST", False), ("PATCH", False)])
def test_a_request_may_be_sent_again_by_its_method_unless_told(method, idempotent):
    """RFC 9110 section 9.2.2; a caller may say a POST is safe to repeat (IAM's token check)."""
    sender = ScriptedSender()
    sender.answer(200)
    sender.answer(200)
    call(sender, "Salesforce", method, "https://example.com/x")
    call(sender, "Salesforce", method, "https://example.com/x", idempotent=True)
    assert [sent.idempotent for sent in sender.sent] == [idempotent, True]


def test_a_form_is_url_encoded_and_json_is_json_and_json_is_asked_for():
    sender = ScriptedSender()
    sender.answer(200)
    sender.answer(200)
    call(sender, "Twilio Sync", "POST", "https://example.com/f", form={"Data": '{"a": 1}', "K": "x y"})
    call(sender, "Twilio IAM", "POST", "https://example.com/j", json_body={"token": "t"},
         headers={"Authorization": "Basic x"})
    form, body = sender.sent
    assert (form.body, form.headers["Content-Type"]) == (
        b"Data=%7B%22a%22%3A+1%7D&K=x+y", "application/x-www-form-urlencoded")
    assert (body.body, body.headers["Content-Type"]) == (b'{"token": "t"}', "application/json")
    assert form.headers["Accept"] == body.headers["Accept"] == "application/json"
    assert body.headers["Authorization"] == "Basic x"
