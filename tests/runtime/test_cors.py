"""CORS: origins compared as origins, and the runtime's own refusals readable by Flex's browser.

In process through App.dispatch; the server's own refusals (413, 414, 431 while reading a
request) and a preflight over real HTTP.
"""
from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

from sfdcflex.runtime.app import Limits
from sfdcflex.runtime import cors
from sfdcflex.runtime.cors import CorsPolicy, origin_of
from sfdcflex.runtime.wsgi import WSGIApp
from tests.support.crm import FLEX_URL
from tests.support.dispatch import Local
from tests.support.wsgi import WsgiCall, environ_for

SELF_HOSTED_FLEX = "https://flex.example.com/agent/"   # FLEX_INSTANCE_URL with a path
FLEX_ORIGIN = "https://flex.example.com"


@pytest.mark.parametrize("url,origin", [
    ("https://flex.example.com/agent/", "https://flex.example.com"),
    ("HTTPS://Flex.Example.COM:443", "https://flex.example.com"),
    ("http://localhost:3000/x?y", "http://localhost:3000"),
    ("http://[::1]:80/", "http://[::1]"),
    ("ftp://flex.example.com", None),
    ("https://user@flex.example.com", None),
    ("https://flex.example.com:99999", None),
])
def test_origin_of_serializes_like_a_browser(url, origin):
    assert origin_of(url) == origin


@pytest.mark.parametrize("sent,allowed", [
    ("https://flex.example.com", True),
    ("https://FLEX.example.COM", True),
    ("https://flex.example.com:443", True),
    ("https://flex.example.com/agent", True),
    ("http://flex.example.com", False),
    ("https://flex.example.com:8443", False),
    ("https://flex.example.com.evil.example", False),
    ("https://evil.example", False),
    ("null", False),
])
def test_a_self_hosted_flex_with_a_path_is_allowed_by_its_origin(dispatcher, sent, allowed):
    local = dispatcher(cors_origins=(SELF_HOSTED_FLEX,))
    answer = local.call("POST", "/hello", headers={"Origin": sent})
    assert answer.status == 200
    assert answer.headers.get("Access-Control-Allow-Origin") == (sent if allowed else None)
    preflight = local.call("OPTIONS", "/hello", headers={"Origin": sent,
                                                         "Access-Control-Request-Method": "POST"})
    assert preflight.headers.get("Access-Control-Allow-Origin") == (sent if allowed else None)


def _raw(url: str, data: bytes) -> tuple[int, dict[str, str]]:
    """Send raw bytes, read the whole answer; the status and headers as a dict."""
    host, port = url.split("//", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        try:
            sock.sendall(data)
        except OSError:
            pass   # the server may answer and close before it has read everything
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head = received.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in head[1:])
    return int(head[0].split(" ")[1]), headers


@pytest.mark.parametrize("kind", ["413", "414", "431"])
def test_refusals_before_a_function_runs_carry_cors(serve, kind):
    served = serve(cors_origins=(SELF_HOSTED_FLEX,))
    origin = "Origin: https://flex.example.com\r\n"
    request = {
        "413": f"POST /echo HTTP/1.1\r\nHost: x\r\n{origin}Content-Type: application/json\r\n"
               f"Content-Length: {7 * 1024 * 1024}\r\n\r\n",
        "414": f"GET /echo?q={'a' * 9000} HTTP/1.1\r\nHost: x\r\n{origin}\r\n",
        "431": f"GET /echo HTTP/1.1\r\nHost: x\r\n{origin}Cookie: {'c' * 16000}\r\n\r\n",
    }[kind]
    status, headers = _raw(served.url, request.encode())
    assert status == int(kind)
    assert headers["Access-Control-Allow-Origin"] == FLEX_ORIGIN
    assert headers["Vary"] == "Origin"


def test_a_refusal_names_no_origin_for_another_site(serve):
    served = serve(cors_origins=(SELF_HOSTED_FLEX,))
    status, headers = _raw(served.url, (
        "POST /echo HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n"
        f"Content-Length: {7 * 1024 * 1024}\r\n\r\n").encode())
    assert status == 413 and "Access-Control-Allow-Origin" not in headers


FLEX = "https://flex.twilio.com"


def test_preflight_is_answered_without_running_the_function(serve):
    """Over real HTTP: a 204 with the CORS headers, and /boom never runs."""
    served = serve(cors_origins=(FLEX,))
    answer = served.call("OPTIONS", "/boom", headers={"Origin": FLEX,
                                                      "Access-Control-Request-Method": "POST"})
    assert answer.status == 204
    assert answer.headers["Access-Control-Allow-Origin"] == FLEX
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    assert answer.headers["Vary"] == "Origin"


def test_cors_only_for_the_flex_instance(dispatcher):
    local = dispatcher(cors_origins=(FLEX,))
    allowed = local.call("POST", "/hello", headers={"Origin": FLEX})
    assert allowed.headers["Access-Control-Allow-Origin"] == FLEX
    assert "Server-Timing" in allowed.headers["Access-Control-Expose-Headers"]
    other = local.call("POST", "/hello", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    preflight = local.call("OPTIONS", "/hello", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_a_function_that_sets_its_own_cors_headers_has_them_sent_alone(dispatcher, tmp_path):
    """Twilio's documented CORS pattern: the function's Access-Control-Allow-Origin, and no second
    value from the runtime (a browser refuses an answer with two)."""
    (tmp_path / "own.py").write_text(
        "from sfdcflex.runtime import Response\n\n\n"
        "def handler(context, event, callback):\n"
        "    callback(None, Response({'cors': 'own'}).append_header('Access-Control-Allow-Origin', '*')\n"
        "             .append_header('Access-Control-Allow-Headers', 'Content-Type'))\n")
    local = dispatcher(tmp_path, cors_origins=(FLEX,))
    for origin in (FLEX, "https://elsewhere.example"):
        answer = local.call("GET", "/own", headers={"Origin": origin})
        assert answer.headers.get_all("Access-Control-Allow-Origin") == ["*"]
        assert answer.headers.get_all("Access-Control-Allow-Headers") == ["Content-Type"]
        assert "Access-Control-Expose-Headers" not in answer.headers and "Vary" not in answer.headers


def test_a_granted_origin_may_read_server_timing(crm):
    """Flex's panel reads Server-Timing: exactly that header is exposed, to the granted origin only."""
    local = Local(crm.app)
    answer = local.call("POST", "/get-user", body={"Token": "not-a-token"}, headers={"Origin": FLEX_URL})
    assert answer.headers["Access-Control-Allow-Origin"] == FLEX_URL
    assert answer.headers["Access-Control-Expose-Headers"] == "Server-Timing"
    assert "Server-Timing" in answer.headers
    refused = local.call("POST", "/get-user", body={"Token": "x"}, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Expose-Headers" not in refused.headers


def test_429_and_504_carry_cors(dispatcher):
    local = dispatcher(cors_origins=(SELF_HOSTED_FLEX,), limits=Limits(timeout=0.1, max_concurrency=1))
    slow = local.app.functions["slow"].module
    slow.RELEASE.clear(), slow.FINISHED.clear()
    flex = {"Origin": FLEX_ORIGIN}
    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(local.call, "POST", "/slow", body={"wait": 5}, headers=flex)
        assert slow.ENTERED.acquire(timeout=5)
        refused = local.call("GET", "/hello", headers=flex)
        assert refused.status == 429
        assert refused.headers["Access-Control-Allow-Origin"] == FLEX_ORIGIN
        timed_out = busy.result(5)
    assert timed_out.status == 504
    assert timed_out.headers["Access-Control-Allow-Origin"] == FLEX_ORIGIN
    slow.RELEASE.set()
    assert slow.FINISHED.wait(5)


def test_wsgi_refusals_carry_cors_too(dispatcher):
    """The WSGI adapter refuses from Content-Length, before reading: with CORS for Flex only."""
    app = WSGIApp(dispatcher(cors_origins=(SELF_HOSTED_FLEX,)).app)
    headers = {"Content-Length": str(7 * 1024 * 1024), "Content-Type": "application/json"}
    for origin, allowed in ((FLEX_ORIGIN, FLEX_ORIGIN), ("https://evil.example", None)):
        answer = WsgiCall()
        app(environ_for("POST", "/echo", headers={**headers, "Origin": origin}, body=b"{}"),
            answer.start_response)
        assert answer.statuses[0].startswith("413 ")
        assert answer.header("Access-Control-Allow-Origin") == allowed


def test_the_answers_remembered_by_origin_are_few_and_for_short_origins_only():
    """An Origin's answer is remembered (a panel sends the same one every time), but only for
    the last MEMO_ORIGINS origins of at most MEMO_ORIGIN_CHARS: ever new long ones hold nothing."""
    policy = CorsPolicy((FLEX_ORIGIN,))
    for n in range(cors.MEMO_ORIGINS + 5):
        assert policy.headers([("Origin", f"https://n{n}.example")]) == (("Vary", "Origin"),)
    assert policy._for_origin.cache_info().currsize == cors.MEMO_ORIGINS
    policy._for_origin.cache_clear()
    long = FLEX_ORIGIN + ":443" + "/" * (cors.MEMO_ORIGIN_CHARS - len(FLEX_ORIGIN) - 3)
    assert len(long) == cors.MEMO_ORIGIN_CHARS + 1
    assert dict(policy.headers([("origin", long)]))["Access-Control-Allow-Origin"] == long
    assert policy._for_origin.cache_info().currsize == 0
    assert dict(policy.headers([("ORIGIN", long[:-1])]))["Access-Control-Allow-Origin"] == long[:-1]
    assert policy._for_origin.cache_info().currsize == 1


def test_the_origin_is_found_among_other_headers_of_its_length(dispatcher):
    local = dispatcher(cors_origins=(FLEX_ORIGIN,))
    answer = local.call("POST", "/hello", headers={"Accept": "*/*", "Cookie": "a=1", "Origin": FLEX_ORIGIN})
    assert answer.headers["Access-Control-Allow-Origin"] == FLEX_ORIGIN
