"""The runtime's WSGI adapter: the same App served as WSGI by the standard library's wsgiref,
and called in process where the test is about the adapter's own choices (the early 504)."""
from __future__ import annotations

import json
import threading
import time

import pytest

from sfdcflex.runtime.app import Limits
from sfdcflex.runtime.response import Reply
from sfdcflex.runtime.wsgi import WSGIApp, _Answer, _raw_path
from tests.support.http import call
from tests.support.wsgi import WsgiCall, environ_for, wsgiref_host


@pytest.fixture
def wsgi_url(local):
    with wsgiref_host(WSGIApp(local.app), thread_name="wsgiref-host") as url:
        yield url


def test_wsgi_serves_functions(wsgi_url):
    assert call(wsgi_url, "GET", "/hello").json() == {"ok": True}
    echo = call(wsgi_url, "POST", "/echo?a=1", body={"b": 2}, headers={"X-Thing": "t"}).json()
    assert echo["event"]["a"] == "1" and echo["event"]["b"] == 2
    assert echo["event"]["request"]["headers"]["x-thing"] == "t"
    assert echo["path"] == "/echo"


def test_wsgi_errors_and_response_objects(wsgi_url):
    assert call(wsgi_url, "GET", "/nope").status == 404
    assert call(wsgi_url, "PUT", "/hello").status == 405
    failed = call(wsgi_url, "GET", "/boom")
    assert failed.status == 500 and b"Traceback" not in failed.body
    built = call(wsgi_url, "GET", "/built")
    assert built.status == 201 and built.headers.get_all("X-Trace") == ["a", "b"]


def test_wsgi_refuses_big_bodies_before_reading(wsgi_url):
    answer = call(wsgi_url, "POST", "/echo", body=b"{}",
                  headers={"Content-Length": str(7 * 1024 * 1024), "Content-Type": "application/json"})
    assert answer.status == 413


class _UnreadBody:
    """A wsgi.input that records whether the app read from it."""

    def __init__(self) -> None:
        self.reads = 0

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        return b"{}"


@pytest.mark.parametrize("method, path, status", [
    ("POST", "/nope", 404), ("PUT", "/echo", 405), ("POST", "/echo", 413)])
def test_a_body_no_function_would_read_is_refused_without_reading_it(local, method, path, status):
    """Like the built-in server: a body to a path with no function (404), with a method never
    taken (405) or over the limit (413) is answered from the head, not a byte of it read, with
    the CORS headers a browser on Flex needs to see the status."""
    length = 7 * 1024 * 1024 if status == 413 else 2
    environ = environ_for(method, path, headers={"Content-Type": "application/json",
                                                 "Origin": "https://flex.twilio.com"})
    environ["wsgi.input"], environ["CONTENT_LENGTH"] = _UnreadBody(), str(length)
    answer = WsgiCall()
    body = b"".join(WSGIApp(local.app)(environ, answer.start_response))
    assert answer.statuses[0].startswith(str(status)) and json.loads(body)["error"]
    assert environ["wsgi.input"].reads == 0
    assert answer.header("Vary") == "Origin"


def test_a_decoded_newline_in_the_path_cannot_forge_a_log_line(wsgi_url, caplog):
    caplog.set_level("INFO", logger="sfdcflex")
    assert call(wsgi_url, "GET", "/nope%0A200%20GET%20/forged").status == 404
    lines = [r.getMessage() for r in caplog.records if "nope" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]


def test_wsgi_runs_the_function_on_the_host_servers_thread(wsgi_url):
    # wsgiref serves on the thread that called serve_forever; a pool of our own would show "fn_".
    assert call(wsgi_url, "GET", "/thread-name").json() == {"thread": "wsgiref-host"}


def test_wsgi_answers_504_at_the_time_limit(dispatcher):
    """Through the host's `write` callable, from the watchdog, while the function goes on; the
    function's own late reply is dropped."""
    app = dispatcher(limits=Limits(timeout=0.1)).app
    slow = app.functions["slow"].module
    slow.RELEASE.clear(), slow.FINISHED.clear()
    answer, returned = WsgiCall(), []
    environ = environ_for("POST", "/slow", headers={"Content-Type": "application/json"},
                          body=json.dumps({"wait": 5}).encode())
    host = threading.Thread(target=lambda: returned.append(WSGIApp(app)(environ, answer.start_response)))
    started = time.monotonic()
    host.start()
    try:
        assert answer.first_write.wait(5)
        assert 0.1 <= time.monotonic() - started < 1.0   # at the limit, not when the function ends
        assert answer.statuses == ["504 Gateway Timeout"]
        assert json.loads(answer.written[0])["error"] == "timeout"
        assert not slow.FINISHED.is_set()  # answered at the limit, while the function goes on
    finally:
        slow.RELEASE.set()
    assert slow.FINISHED.wait(5)
    host.join(5)
    assert returned == [[]] and answer.statuses == ["504 Gateway Timeout"]


def test_the_request_is_what_the_built_in_server_would_read(local):
    """Method, target with its query, headers (Content-Type apart in PEP 3333), body, peer."""
    environ = environ_for("POST", "/echo?a=1", headers={"Content-Type": "application/json",
                                                       "X-Thing": "t"}, body=b'{"b":2}')
    environ["REMOTE_ADDR"] = "10.1.2.3"
    request = WSGIApp(local.app)._request(environ)
    assert (request.method, request.target, request.body, request.remote_addr) == (
        "POST", "/echo?a=1", b'{"b":2}', "10.1.2.3")
    assert ("Content-Type", "application/json") in request.headers and ("X-Thing", "t") in request.headers
    bare = {"REQUEST_METHOD": "GET", "PATH_INFO": "/echo", "wsgi.input": None}   # no query, no peer
    assert WSGIApp(local.app)._request(bare)[:5] == ("GET", "/echo", (), b"", "")


@pytest.mark.parametrize("environ, path", [
    ({"RAW_URI": "/a%3Fb?x=1?y", "PATH_INFO": "/a?b"}, "/a%3Fb"),          # gunicorn
    ({"REQUEST_URI": "/a%2Fb?x=1", "PATH_INFO": "/a/b"}, "/a%2Fb"),        # uWSGI
    ({"SCRIPT_NAME": "/fx", "PATH_INFO": "/hello"}, "/fx/hello"),
    ({"PATH_INFO": "/a b/c:d@e;f=g,h?i#j%k"}, "/a%20b/c:d@e;f=g,h%3Fi%23j%25k"),
    ({"PATH_INFO": "/caf\xc3\xa9"}, "/caf%C3%A9"),                          # latin-1 text of UTF-8
    ({}, "/"),
], ids=["raw-uri", "request-uri", "script-name", "decoded", "latin-1", "none"])
def test_the_path_is_the_one_the_client_sent(environ, path):
    assert _raw_path(environ) == path


@pytest.mark.parametrize("length, status", [
    ("abc", 400), ("-1", 400), ("\uff11\uff12", 400), ("1" * 19, 400), ("1" * 18, 413)],
    ids=["letters", "negative", "fullwidth-digits", "19-digits", "18-digits"])
def test_a_content_length_must_be_1_to_18_ascii_digits(local, length, status):
    environ = environ_for("POST", "/echo", headers={"Content-Type": "application/json"})
    environ["wsgi.input"], environ["CONTENT_LENGTH"] = _UnreadBody(), length
    answer = WsgiCall()
    body = json.loads(b"".join(WSGIApp(local.app)(environ, answer.start_response)))
    assert answer.statuses[0].startswith(str(status)) and environ["wsgi.input"].reads == 0
    if status == 400:
        assert body == {"error": "bad_content_length",
                        "message": "Content-Length must be 1 to 18 ASCII digits"}
    assert answer.header("Vary") == "Origin" and answer.header("Access-Control-Allow-Origin") is None


def test_every_answer_says_its_length(local):
    answer = WsgiCall()
    body = b"".join(WSGIApp(local.app)(environ_for("GET", "/hello"), answer.start_response))
    assert body and answer.headers[-1][-1] == ("Content-Length", str(len(body)))


def test_one_reply_per_request_whichever_comes_first():
    """The function's reply and the watchdog's early 504: the first is sent, the other dropped."""
    for first, second in (("final", "early"), ("early", "final")):
        answer = WsgiCall()
        sender = _Answer(answer.start_response)
        getattr(sender, first)(Reply(200, [], b"first"))
        assert getattr(sender, second)(Reply(504, [], b"second")) in (None, [])
        assert len(answer.statuses) == 1 and answer.statuses[0].startswith("200")
