"""The Functions runtime's App: routing, the handler contract, context, limits, built-ins, logs.

In process through App.dispatch (the `local` and `dispatcher` fixtures, tests/runtime/conftest.py);
over real HTTP (`runtime`, `serve`) only a routing smoke test and what the wire decides: HEAD,
and the early 504 the server writes while the function goes on.
"""
from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from sfdcflex.runtime.app import Limits, Request
from sfdcflex.runtime.response import Reply
from sfdcflex.runtime.routes import Asset


# --- routing and the handler contract -----------------------------------------------------

def test_routes_by_file_name_including_hyphens_and_folders(runtime):
    assert runtime.call("GET", "/hello").json() == {"ok": True}
    assert runtime.call("POST", "/async-hello").json() == {"async": True}
    assert runtime.call("GET", "/sub/nested").json() == {"nested": "/sub/nested"}


@pytest.mark.parametrize("path", ["/boom", "/err"])
def test_failures_are_500_json_without_traceback(local, path, caplog):
    answer = local.call("GET", path)
    assert answer.status == 500
    assert answer.json()["error"] == "internal_error"
    assert b"Traceback" not in answer.body and b"secret internals" not in answer.body
    if path == "/boom":
        assert "secret internals" in caplog.text  # the traceback goes to the server log only


def test_first_callback_wins_and_later_ones_are_logged_with_the_route(local, caplog):
    with caplog.at_level(logging.INFO, logger="sfdcflex"):
        assert local.call("GET", "/twice").json() == {"first": True}
    assert "/twice: callback called again; ignored (the first callback wins)" in [
        r.getMessage() for r in caplog.records]


def test_a_callback_after_the_handler_returned_is_answered_at_once(dispatcher):
    """The waiting worker is woken by the callback, not by the time limit."""
    local = dispatcher(limits=Limits(timeout=2.0))
    started = time.monotonic()
    answer = local.call("GET", "/later", timeout=5)
    assert answer.status == 200 and answer.json() == {"late": True}
    assert time.monotonic() - started < 1.0


def test_a_payload_that_cannot_be_sent_is_a_500_that_says_so(local, caplog):
    """The answer's message, and the log line naming the function and why."""
    with caplog.at_level(logging.INFO, logger="sfdcflex"):
        answer = local.call("GET", "/unsendable")
    assert (answer.status, answer.json()) == (500, {
        "error": "internal_error", "message": "the function returned a value that cannot be sent"})
    assert ("/unsendable: cannot send what the function returned: "
            "Object of type set is not JSON serializable") in [r.getMessage() for r in caplog.records]


# --- context ----------------------------------------------------------------------------------

def test_context_values_and_request_facts(dispatcher):
    """DOMAIN_NAME is the server's own (from PUBLIC_URL), never the client's Host header."""
    local = dispatcher(public_url="https://functions.example.com:8443/")
    context = local.call("GET", "/echo", headers={"Host": "attacker.example"}).json()
    assert context["greeting"] == "hi"
    assert context["path"] == "/echo"
    assert context["domain"] == "functions.example.com:8443"
    assert context["service"] is None and context["environment"] is None


@pytest.mark.parametrize("target", ["/echo?a=1#frag", "http://functions.example.com/echo?a=1",
                                    "https://x.example/echo?a=1#f"])
def test_a_fragment_is_dropped_and_an_absolute_form_target_routes_by_its_path(local, target):
    """RFC 9112 §3.2.2: a server must accept an absolute-form target; a fragment is no part of
    what a server routes, as Node's URL parser drops it."""
    answer = local.dispatch(local.request("GET", target))
    assert answer.status == 200
    assert json.loads(answer.body)["event"]["a"] == "1"


def test_a_function_named_like_a_built_in_route_takes_its_path(dispatcher, tmp_path, caplog):
    (tmp_path / "probe.py").write_text("def handler(context, event, callback):\n    callback(None, 'mine')\n")
    with caplog.at_level(logging.WARNING, logger="sfdcflex"):
        local = dispatcher(tmp_path, builtins={"/probe": _probe})
    assert local.call("GET", "/probe").body == b"mine"
    assert "takes the path of the built-in check at /probe" in caplog.text


def test_the_path_ends_at_the_first_question_mark(local):
    """The path is cut at the first "?": a "?" inside the query would change the route."""
    answer = local.call("GET", "/echo?next=/a?b=1&c=2")
    assert answer.status == 200
    assert answer.json()["path"] == "/echo" and answer.json()["event"]["next"] == "/a?b=1"


def test_missing_context_setting_names_it_in_the_log(local, caplog):
    assert local.call("GET", "/missing-setting").status == 500
    assert "NOT_CONFIGURED" in caplog.text


def test_live_reload_picks_up_a_changed_function(dispatcher, tmp_path):
    fn = tmp_path / "greet.py"
    fn.write_text("def handler(context, event, callback):\n    callback(None, 'one')\n")
    local = dispatcher(tmp_path, live=True)
    assert local.call("GET", "/greet").body == b"one"
    fn.write_text("def handler(context, event, callback):\n    callback(None, 'two')\n")
    later = time.time() + 5  # a clearly newer mtime, whatever the file system's resolution
    os.utime(fn, (later, later))
    assert local.call("GET", "/greet").body == b"two"


# --- the time limit -------------------------------------------------------------------------------

def test_over_the_time_limit_is_504_and_the_worker_finishes(serve):
    """Over the wire: the server writes the watchdog's 504 while the function still runs."""
    served = serve(limits=Limits(timeout=0.1))
    slow = served.app.functions["slow"].module
    slow.RELEASE.clear(), slow.FINISHED.clear()
    started = time.monotonic()
    answer = served.call("POST", "/slow", body={"wait": 5})
    elapsed = time.monotonic() - started
    assert answer.status == 504 and answer.json()["error"] == "timeout"
    assert 0.1 <= elapsed < 1.5   # at the limit, not when the function ends (5 s)
    assert not slow.FINISHED.is_set()   # answered while the function still ran
    slow.RELEASE.set()
    assert slow.FINISHED.wait(5)  # left to finish in the background


def test_a_handler_that_never_calls_back_is_504_at_the_time_limit(dispatcher, caplog):
    """The wait for a callback is bounded by what is left of the limit, and logged."""
    local = dispatcher(limits=Limits(timeout=0.1))
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="sfdcflex"):
        answer = local.call("GET", "/never", timeout=3)
        assert local.join()
    assert answer.status == 504
    assert answer.json() == {"error": "timeout", "message": "the function did not finish within 0.1 s"}
    assert 0.1 <= time.monotonic() - started < 1.0
    messages = [r.getMessage() for r in caplog.records]
    assert "/never: over the 0.1 s execution time limit" in messages
    assert any(m.startswith("504 GET /never ") for m in messages)


def test_at_the_time_limit_the_504_is_logged_once_and_the_request_line_says_504(dispatcher, caplog):
    """The function goes on after the 504, and its late end neither logs the overrun again nor
    changes the request's status."""
    local = dispatcher(limits=Limits(timeout=0.1))
    slow = local.app.functions["slow"].module
    slow.RELEASE.clear(), slow.FINISHED.clear()
    with caplog.at_level(logging.INFO, logger="sfdcflex"):
        answer = local.call("POST", "/slow", body={"wait": 5}, timeout=3)
        assert answer.status == 504
        assert answer.json() == {"error": "timeout", "message": "the function did not finish within 0.1 s"}
        slow.RELEASE.set()
        assert slow.FINISHED.wait(3) and local.join()
    messages = [r.getMessage() for r in caplog.records]
    assert [m for m in messages if "execution time limit" in m] == [
        "/slow: over the 0.1 s execution time limit; answered 504, the function goes on"]
    assert [m.split(" ms")[0][:15] for m in messages if "POST /slow " in m] == ["504 POST /slow "]


def test_two_overrunning_functions_are_each_answered_504_at_the_limit(dispatcher):
    """The watchdog is keyed by invocation: one overrun must not disarm another's."""
    local = dispatcher(limits=Limits(timeout=0.1))
    slow = local.app.functions["slow"].module
    slow.RELEASE.clear()
    try:
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(local.call, "POST", "/slow", body={"wait": 5}, timeout=5)
            assert slow.ENTERED.acquire(timeout=5)
            second = pool.submit(local.call, "POST", "/slow", body={"wait": 5}, timeout=5)
            assert slow.ENTERED.acquire(timeout=5)
            started = time.monotonic()
            assert [first.result(3).status, second.result(3).status] == [504, 504]
            assert time.monotonic() - started < 1.5  # at their limits, not when the test lets go
    finally:
        slow.RELEASE.set()


# --- concurrency, methods, bodies ---------------------------------------------------------------------

def test_over_the_concurrency_cap_is_429_at_once_and_says_so(dispatcher):
    local = dispatcher(limits=Limits(timeout=10, max_concurrency=2))
    slow = local.app.functions["slow"].module
    slow.RELEASE.clear()
    try:
        with ThreadPoolExecutor(2) as pool:
            busy = [pool.submit(local.call, "POST", "/slow", body={"wait": 5}) for _ in range(2)]
            assert slow.ENTERED.acquire(timeout=5) and slow.ENTERED.acquire(timeout=5)
            started = time.monotonic()
            refused = local.call("GET", "/hello")
            assert refused.status == 429 and time.monotonic() - started < 0.3   # refused, not queued
            assert refused.headers["Retry-After"] == "1"
            assert refused.json() == {"error": "too_many_requests",
                                      "message": "more than 2 invocations at once; retry shortly"}
            slow.RELEASE.set()
            assert [f.result(5).status for f in busy] == [200, 200]
    finally:
        slow.RELEASE.set()
    assert local.call("GET", "/hello").status == 200


def test_a_wait_outside_the_slot_leaves_it_to_others(dispatcher):
    local = dispatcher(limits=Limits(timeout=10, max_concurrency=1))
    waiting = local.app.functions["waits-outside"].module
    waiting.RELEASE.clear()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(local.call, "POST", "/waits-outside", body={})
        assert waiting.WAITING.acquire(timeout=5)
        assert local.call("GET", "/hello").status == 200  # the cap is 1, and it is free
        waiting.RELEASE.set()
        assert first.result(5).status == 200


def test_taking_the_slot_back_waits_for_it_then_answers_429_at_the_time_limit(dispatcher):
    local = dispatcher(limits=Limits(timeout=0.1, max_concurrency=1))
    waiting, slow = local.app.functions["waits-outside"].module, local.app.functions["slow"].module
    waiting.RELEASE.clear(), slow.RELEASE.clear()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(local.call, "POST", "/waits-outside", body={})
        assert waiting.WAITING.acquire(timeout=5)
        second = pool.submit(local.call, "POST", "/slow", body={"wait": 5})
        assert slow.ENTERED.acquire(timeout=5)  # holds the only slot
        waiting.RELEASE.set()
        assert first.result(5).status in (429, 504)  # never runs on past the cap
        slow.RELEASE.set()
        second.result(5)


def test_a_failed_wait_outside_the_slot_keeps_its_error_and_frees_the_slot(dispatcher):
    """The slot is given back once: twice would be the semaphore's error, a 500."""
    local = dispatcher(limits=Limits(timeout=2.0, max_concurrency=1))
    for _ in range(3):
        answer = local.call("GET", "/refused-outside")
        assert answer.status == 403
        assert answer.json() == {"error": "invalid_token", "message": "the token was refused"}
    assert local.call("GET", "/hello").status == 200


def test_methods_other_than_get_post_options_are_405(runtime):
    """Over the wire: HEAD included, whose answer has no body."""
    for method in ("PUT", "DELETE", "PATCH", "HEAD"):
        answer = runtime.call(method, "/hello")
        assert answer.status == 405
        assert "GET" in answer.headers["Allow"]


def test_other_methods_are_405_with_the_allowed_ones(local):
    """The 405's message and its Allow header."""
    answer = local.call("PUT", "/hello")
    assert (answer.status, answer.headers["Allow"]) == (405, "GET, POST, OPTIONS")
    assert answer.json() == {"error": "method_not_allowed",
                             "message": "PUT is not allowed; use GET, POST or OPTIONS"}


def test_the_body_limit_is_checked_by_dispatch_too(dispatcher):
    """The route's limit, inclusive, with its message, for callers that hand dispatch a whole
    body (the WSGI adapter); the HTTP server refuses from Content-Length first."""
    app = dispatcher(body_limits={"/hello": 20}).app
    at_limit = Request("POST", "/hello", [("Content-Type", "application/json")], b"{" + b" " * 18 + b"}")
    assert app.dispatch(at_limit, lambda reply: None).status == 200
    over = Request("POST", "/hello", [("Content-Type", "application/json")], b"{" + b" " * 19 + b"}")
    reply = app.dispatch(over, lambda reply: None)
    assert reply.status == 413
    assert json.loads(reply.body) == {"error": "payload_too_large",
                                      "message": "request bodies are limited to 20 bytes"}


# --- built-in routes and the request line ------------------------------------------------------------

def _probe(request: Request) -> Reply:
    return Reply(200, [("Content-Type", "text/plain")], request.target.encode())


def _broken_probe(request: Request) -> Reply:
    raise RuntimeError("planted")


@pytest.fixture
def built_ins(dispatcher):
    """An app with built-in routes (a health probe, one that fails) and a static asset."""
    return dispatcher(builtins={"/probe": _probe, "/broken": _broken_probe},
                      assets={"/page.html": Asset("text/html", b"<p>page")})


BIG = 6 * 1024 * 1024 + 1


@pytest.mark.parametrize("method, target, length, status", [
    ("POST", "/nope", 2, 404), ("POST", "/probe", 2, 404), ("HEAD", "/nope", 2, 404),
    ("POST", "http://h/nope?a=1", 2, 404), ("DELETE", "/echo", 2, 405), ("PUT", "/page.html", BIG, 405),
    ("POST", "/echo", BIG, 413), ("POST", "/nope", BIG, 413),
    ("GET", "/probe", 2, None), ("POST", "/page.html", 2, None), ("POST", "/echo", 2, None),
    ("POST", "http://h/echo#x", 2, None), ("POST", "/echo#x", 2, None)])
def test_what_the_head_alone_decides_is_what_dispatch_would_answer(built_ins, method, target, length,
                                                                   status):
    """The server refuses from the head what the app refuses whatever the body (405, 413, 404,
    in dispatch's order; absolute-form targets and fragments read as dispatch reads them), so
    no body is read for nothing; a request the app would answer otherwise is read on."""
    refused = built_ins.app.head_refusal(method, target, length)
    assert (refused.status if refused else None) == status
    if status is not None:
        request = Request(method, target, [("Host", "h")], b"x" * length, "127.0.0.1")
        assert built_ins.dispatch(request).status == status


def test_built_ins_answer_get_only_and_log_quietly(built_ins, caplog):
    """A built-in route answers GET, given the request, and its request line is logged at DEBUG,
    every other at INFO; an asset answers GET, HEAD and POST (as twilio-run serves it), not PUT."""
    with caplog.at_level(logging.DEBUG, logger="sfdcflex"):
        probe = built_ins.call("GET", "/probe?x=1")
        posted = built_ins.call("POST", "/probe")
        page, posted_page = built_ins.call("GET", "/page.html"), built_ins.call("POST", "/page.html")
        put_page = built_ins.call("PUT", "/page.html")
    assert (probe.status, probe.body) == (200, b"/probe?x=1")
    assert posted.status == 404 and put_page.status == 405
    assert (page.status, page.body) == (200, b"<p>page") == (posted_page.status, posted_page.body)
    assert page.headers["Cache-Control"] == "public, max-age=0"
    levels = {r.getMessage().split(" ms")[0].rsplit(" ", 1)[0]: r.levelno for r in caplog.records
              if r.getMessage().endswith("ms")}
    assert levels == {"200 GET /probe": logging.DEBUG, "404 POST /probe": logging.INFO,
                      "200 GET /page.html": logging.INFO, "200 POST /page.html": logging.INFO,
                      "405 PUT /page.html": logging.INFO}


def test_a_runtime_failure_is_a_500_that_says_so_and_is_logged(built_ins, caplog):
    """The answer and the log line for a failure outside any function."""
    with caplog.at_level(logging.INFO, logger="sfdcflex"):
        answer = built_ins.call("GET", "/broken")
    assert (answer.status, answer.json()) == (500, {
        "error": "internal_error", "message": "the function runtime failed; see the server log"})
    failure = [r for r in caplog.records if r.getMessage() == "GET /broken: runtime failure"]
    assert len(failure) == 1 and "planted" in str(failure[0].exc_info[1])


def test_the_request_line_gives_the_time_taken_in_milliseconds(dispatcher, caplog):
    """Milliseconds, from the request's start."""
    local = dispatcher(limits=Limits(timeout=2.0))
    with caplog.at_level(logging.INFO, logger="sfdcflex"):
        assert local.call("GET", "/later").status == 200  # calls back after 50 ms
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("200 GET /later "))
    assert 45 <= float(line.rsplit(" ", 1)[1][:-2]) < 2000


def test_a_request_line_not_written_is_not_made(local, monkeypatch):
    """At level WARNING the INFO request line is never written, so none of it is made."""
    import sfdcflex.runtime.app as app_module

    def made(text, limit=200):
        raise AssertionError("a request line made though it is not written")

    monkeypatch.setattr(app_module, "loggable", made)
    logger = logging.getLogger("sfdcflex")
    level = logger.level
    logger.setLevel(logging.WARNING)   # setLevel, not the attribute: it clears the level caches
    try:
        assert local.call("GET", "/hello").status == 200
    finally:
        logger.setLevel(level)
