"""The runtime's limits in app.py (time, concurrency slots, body sizes, signed forms) where
mutation testing found them unchecked (mutmut 3.8, issue 18). Over real loopback sockets, with
small functions written for each case.

Each test names the mutants it kills; the equivalent ones are listed in README's reliability
report.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest

from tests.support.served import AUTH_TOKEN, FIXTURE_FUNCTIONS
from sfdcflex.runtime.app import Limits

FUNCTIONS = {
    # Returns without calling back: the runtime waits for a callback until the time limit.
    "never.py": "def handler(context, event, callback):\n    pass\n",
    # Calls back from another thread after the handler returned (like a promise resolving).
    "later.py": (
        "import threading\n\n"
        "def handler(context, event, callback):\n"
        "    threading.Timer(0.05, callback, (None, {'late': True})).start()\n"),
    # Gives its slot back for a wait that fails: its own error is the answer.
    "refused-outside.py": (
        "from sfdcflex.runtime.errors import Forbidden\n\n"
        "def handler(context, event, callback):\n"
        "    with context.slot_released():\n"
        "        raise Forbidden('the token was refused', code='invalid_token')\n"),
    "hello.py": "def handler(context, event, callback):\n    callback(None, {'ok': True})\n",
    # Calls back with what JSON cannot hold.
    "unsendable.py": "def handler(context, event, callback):\n    callback(None, {'ids': {1, 2}})\n",
}


@pytest.fixture(scope="module")
def functions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("functions")
    for name, text in FUNCTIONS.items():
        (folder / name).write_text(text)
    return folder


def wait_for(condition, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_handler_that_never_calls_back_is_504_at_the_time_limit(serve, functions, caplog):
    """_Invocation.wait 2-5, __init__ 12 (how the wait for a callback is made and bounded);
    _invoke: the wait's bound (max(0, deadline - now)) and its log line."""
    served = serve(functions, limits=Limits(timeout=0.3))
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="sfdcflex"):
        answer = served.call("GET", "/never", timeout=3)
    assert answer.status == 504
    assert answer.json() == {"error": "timeout", "message": "the function did not finish within 0.3 s"}
    assert 0.25 <= time.monotonic() - started < 0.9
    messages = [r.getMessage() for r in caplog.records]
    assert "/never: over the 0.3 s execution time limit" in messages
    assert any(m.startswith("504 GET /never ") for m in messages)


def test_a_callback_after_the_handler_returned_is_answered_at_once(serve, functions):
    """_Invocation.callback 9, 10 (the waiting worker is woken by the callback, not the limit)."""
    served = serve(functions, limits=Limits(timeout=2.0))
    started = time.monotonic()
    answer = served.call("GET", "/later", timeout=5)
    assert answer.status == 200 and answer.json() == {"late": True}
    assert time.monotonic() - started < 1.0


def test_a_failed_wait_outside_the_slot_keeps_its_error_and_frees_the_slot(serve, functions):
    """_Invocation.release_slot 2 (the slot given back twice: the semaphore's error, a 500)."""
    served = serve(functions, limits=Limits(timeout=2.0, max_concurrency=1))
    for _ in range(3):
        answer = served.call("GET", "/refused-outside")
        assert answer.status == 403
        assert answer.json() == {"error": "invalid_token", "message": "the token was refused"}
    assert served.call("GET", "/hello").status == 200


def test_at_the_time_limit_the_504_is_logged_once_and_the_request_line_says_504(serve, caplog):
    """_overtime 1-10 (the overtime flag and its log line): the function goes on after the 504,
    and its late end neither logs the overrun again nor changes the request's status."""
    served = serve(FIXTURE_FUNCTIONS, limits=Limits(timeout=0.3))
    slow = served.app.functions["slow"].module
    slow.RELEASE.clear(), slow.FINISHED.clear()
    with caplog.at_level(logging.INFO, logger="sfdcflex"):
        answer = served.call("POST", "/slow", body={"wait": 5}, timeout=3)
        assert answer.status == 504
        assert answer.json() == {"error": "timeout", "message": "the function did not finish within 0.3 s"}
        slow.RELEASE.set()
        assert slow.FINISHED.wait(3)
        assert wait_for(lambda: any(r.getMessage().startswith(("504 POST /slow ", "200 POST /slow "))
                                    for r in caplog.records))
    messages = [r.getMessage() for r in caplog.records]
    assert [m for m in messages if "execution time limit" in m] == [
        "/slow: over the 0.3 s execution time limit; answered 504, the function goes on"]
    assert [m.split(" ms")[0][:15] for m in messages if "POST /slow " in m] == ["504 POST /slow "]


def test_a_second_callback_is_logged_with_its_route(runtime, caplog):
    """_Invocation.callback 1-6 (the warning's text and route)."""
    with caplog.at_level(logging.INFO, logger="sfdcflex"):
        assert runtime.call("GET", "/twice").json() == {"first": True}
        assert wait_for(lambda: "callback called again" in caplog.text)
    assert "/twice: callback called again; ignored (the first callback wins)" in [
        r.getMessage() for r in caplog.records]


def _signed(url: str, params: dict[str, str]) -> str:
    # Twilio's documented algorithm, independent of sfdcflex.runtime.signature.
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(AUTH_TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()


@pytest.mark.parametrize("name,kind", [
    ("content-type", "application/x-www-form-urlencoded; charset=utf-8; x=y"),
    ("CONTENT-TYPE", " Application/X-WWW-Form-URLEncoded ;charset=UTF-8"),
])
def test_a_signed_form_is_a_form_whatever_its_parameters_and_letter_case(runtime, name, kind):
    """_declared_form 6-22: the header found by any case, its type before the first ';',
    stripped and compared without regard to case."""
    params = {"Digits": "5"}
    headers = {name: kind, "X-Twilio-Signature": _signed(runtime.url + "/webhook", params)}
    answer = runtime.call("POST", "/webhook", body=urlencode(params).encode(), headers=headers)
    assert answer.status == 200 and answer.json() == {"accepted": "5"}


def test_a_signed_request_without_a_content_type_is_checked_like_any_other(runtime):
    """_declared_form 3, 5 (no Content-Type header: no default, or None, fails the check)."""
    target = "/webhook?Digits=6"
    answer = runtime.call("GET", target, headers={"X-Twilio-Signature": _signed(runtime.url + target, {})})
    assert answer.status == 200 and answer.json() == {"accepted": "6"}
    assert runtime.call("GET", target, headers={"X-Twilio-Signature": _signed(runtime.url + "/webhook", {})}).status == 403


SIGNATURE_REFUSALS = {
    "missing": {"error": "invalid_signature",
                "message": "this function needs a valid X-Twilio-Signature header"},
    "uncovered": {"error": "invalid_signature",
                  "message": "a body that is not a form must be signed through a bodySHA256 query parameter"},
    "mismatch": {"error": "invalid_signature",
                 "message": "the X-Twilio-Signature does not match this request"},
}


def test_each_signature_refusal_says_why(runtime):
    """_check_signature 10-18, 44-54, 66-74 (codes and messages); 38 (a JSON body under a
    signature without bodySHA256 is refused, not taken as covered)."""
    params = {"Digits": "5"}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    body = urlencode(params).encode()
    missing = runtime.call("POST", "/webhook", body=body, headers=form)
    assert (missing.status, missing.json()) == (403, SIGNATURE_REFUSALS["missing"])
    wrong = runtime.call("POST", "/webhook", body=body, headers={**form, "X-Twilio-Signature": "x"})
    assert (wrong.status, wrong.json()) == (403, SIGNATURE_REFUSALS["mismatch"])
    signed_url = _signed(runtime.url + "/webhook?Digits=5", {})
    uncovered = runtime.call("POST", "/webhook?Digits=5", body=json.dumps({"Digits": "9"}).encode(),
                             headers={"Content-Type": "application/json", "X-Twilio-Signature": signed_url})
    assert (uncovered.status, uncovered.json()) == (403, SIGNATURE_REFUSALS["uncovered"])


def test_a_request_without_host_is_signed_for_localhost(runtime):
    """_check_signature 21, 23, 28, 29 (the URL's host when the request names none)."""
    target = "/webhook?Digits=8"
    good = _signed("http://localhost" + target, {})
    host, port = runtime.url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nX-Twilio-Signature: {good}\r\n"
                     "Connection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b'{"accepted":"8"}'), answer


def test_two_overrunning_functions_are_each_answered_504_at_the_limit(serve):
    """_invoke 3 (the watchdog keyed by invocation: one overrun must not disarm another's)."""
    served = serve(FIXTURE_FUNCTIONS, limits=Limits(timeout=0.3))
    slow = served.app.functions["slow"].module
    slow.RELEASE.clear()
    try:
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(served.call, "POST", "/slow", body={"wait": 5}, timeout=5)
            assert slow.ENTERED.acquire(timeout=5)
            second = pool.submit(served.call, "POST", "/slow", body={"wait": 5}, timeout=5)
            assert slow.ENTERED.acquire(timeout=5)
            started = time.monotonic()
            assert [first.result(3).status, second.result(3).status] == [504, 504]
            assert time.monotonic() - started < 1.5  # at their limits, not when the test lets go
    finally:
        slow.RELEASE.set()


def test_a_payload_that_cannot_be_sent_is_a_500_that_says_so(serve, functions, caplog):
    """_invoke 48-59 (the answer's message and the log line naming the function and why)."""
    served = serve(functions)
    with caplog.at_level(logging.INFO, logger="sfdcflex"):
        answer = served.call("GET", "/unsendable")
    assert (answer.status, answer.json()) == (500, {
        "error": "internal_error", "message": "the function returned a value that cannot be sent"})
    assert ("/unsendable: cannot send what the function returned: "
            "Object of type set is not JSON serializable") in [r.getMessage() for r in caplog.records]


def test_the_path_ends_at_the_first_question_mark(runtime):
    """dispatch 7 (the path cut at the last "?": a "?" inside the query would change the route)."""
    answer = runtime.call("GET", "/echo?next=/a?b=1&c=2")
    assert answer.status == 200
    assert answer.json()["path"] == "/echo" and answer.json()["event"]["next"] == "/a?b=1"


def _probe(request):
    from sfdcflex.runtime.response import Reply
    return Reply(200, [("Content-Type", "text/plain")], request.target.encode())


def _broken_probe(request):
    raise RuntimeError("planted")


@pytest.fixture(scope="module")
def built_ins(functions):
    """A server with built-in routes (a health probe, one that fails) and a static asset."""
    from tests.support.served import Served
    from sfdcflex.runtime.app import App
    from sfdcflex.runtime.routes import Asset, build_routes, discover_functions
    from sfdcflex.runtime.http.server import FunctionsServer, start_in_thread
    found = discover_functions(functions)
    app = App(build_routes(found), found, env={"AUTH_TOKEN": AUTH_TOKEN},
              builtins={"/probe": _probe, "/broken": _broken_probe},
              assets={"/page.html": Asset("text/html", b"<p>page")}, body_limits={"/hello": 20})
    server = FunctionsServer(("127.0.0.1", 0), app)
    start_in_thread(server)
    yield Served(server.url, app, server)
    server.shutdown()
    server.server_close()
    app.close()


def test_built_ins_answer_get_only_and_log_quietly(built_ins, caplog):
    """_answer 15, 16, 19-22 (a built-in route, for GET, given the request); dispatch 47, 50-52
    (its request line at DEBUG, every other at INFO); _answer 28 (assets for GET only)."""
    with caplog.at_level(logging.DEBUG, logger="sfdcflex"):
        probe = built_ins.call("GET", "/probe?x=1")
        posted = built_ins.call("POST", "/probe")
        page, posted_page = built_ins.call("GET", "/page.html"), built_ins.call("POST", "/page.html")
    assert (probe.status, probe.body) == (200, b"/probe?x=1")
    assert posted.status == 404 and posted_page.status == 404
    assert (page.status, page.body) == (200, b"<p>page")
    assert page.headers["Cache-Control"] == "no-cache"  # _answer 44, 47
    levels = {r.getMessage().split(" ms")[0].rsplit(" ", 1)[0]: r.levelno for r in caplog.records
              if r.getMessage().endswith("ms")}
    assert levels == {"200 GET /probe": logging.DEBUG, "404 POST /probe": logging.INFO,
                      "200 GET /page.html": logging.INFO, "404 POST /page.html": logging.INFO}


def test_a_runtime_failure_is_a_500_that_says_so_and_is_logged(built_ins, caplog):
    """dispatch 27-41 (the log line for a failure outside any function, and the answer)."""
    with caplog.at_level(logging.INFO, logger="sfdcflex"):
        answer = built_ins.call("GET", "/broken")
    assert (answer.status, answer.json()) == (500, {
        "error": "internal_error", "message": "the function runtime failed; see the server log"})
    failure = [r for r in caplog.records if r.getMessage() == "GET /broken: runtime failure"]
    assert len(failure) == 1 and "planted" in str(failure[0].exc_info[1])


def test_the_request_line_gives_the_time_taken_in_milliseconds(serve, functions, caplog):
    """dispatch 70, 71 (milliseconds, from the request's start)."""
    served = serve(functions, limits=Limits(timeout=2.0))
    with caplog.at_level(logging.INFO, logger="sfdcflex"):
        assert served.call("GET", "/later").status == 200  # calls back after 50 ms
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("200 GET /later "))
    assert 45 <= float(line.rsplit(" ", 1)[1][:-2]) < 2000


def test_the_body_limit_is_checked_by_dispatch_too(built_ins):
    """_answer 11-14: the route's limit, inclusive, with its message, for callers that hand
    dispatch a whole body (the WSGI adapter); the HTTP server refuses from Content-Length first."""
    from sfdcflex.runtime.app import Request
    at_limit = Request("POST", "/hello", [("Content-Type", "application/json")], b"{" + b" " * 18 + b"}")
    assert built_ins.app.dispatch(at_limit, lambda reply: None).status == 200
    over = Request("POST", "/hello", [("Content-Type", "application/json")], b"{" + b" " * 19 + b"}")
    reply = built_ins.app.dispatch(over, lambda reply: None)
    assert reply.status == 413
    assert json.loads(reply.body) == {"error": "payload_too_large",
                                      "message": "request bodies are limited to 20 bytes"}


def test_other_methods_are_405_with_the_allowed_ones(runtime):
    """_answer 2, 10 (the 405's message and its Allow header)."""
    answer = runtime.call("PUT", "/hello")
    assert (answer.status, answer.headers["Allow"]) == (405, "GET, POST, OPTIONS")
    assert answer.json() == {"error": "method_not_allowed",
                             "message": "PUT is not allowed; use GET, POST or OPTIONS"}


def test_unknown_paths_and_the_concurrency_cap_say_what_happened(serve):
    """_answer 49 (the 404's message), 67 (the 429's message)."""
    served = serve(FIXTURE_FUNCTIONS, limits=Limits(timeout=2.0, max_concurrency=1))
    assert served.call("GET", "/nope").json() == {"error": "not_found", "message": "no function at /nope"}
    slow = served.app.functions["slow"].module
    slow.RELEASE.clear()
    try:
        with ThreadPoolExecutor(1) as pool:
            busy = pool.submit(served.call, "POST", "/slow", body={"wait": 5}, timeout=5)
            assert slow.ENTERED.acquire(timeout=5)
            refused = served.call("GET", "/hello")
            assert refused.json() == {"error": "too_many_requests",
                                      "message": "more than 1 invocations at once; retry shortly"}
            slow.RELEASE.set()
            assert busy.result(5).status == 200
    finally:
        slow.RELEASE.set()
