"""The runtime's WSGI adapter: the same App served as WSGI by the standard library's wsgiref,
and called in process where the test is about the adapter's own choices (the early 504)."""
from __future__ import annotations

import json
import threading
import time

import pytest

from sfdcflex.runtime.app import Limits
from sfdcflex.runtime.wsgi import WSGIApp
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
