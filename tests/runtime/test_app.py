"""The Functions runtime over real HTTP: routing, the handler contract, event, context, limits."""
from __future__ import annotations

import base64
import os
import hashlib
import hmac
import json
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest

from tests.support.served import AUTH_TOKEN
from sfdcflex.runtime.app import Limits


# --- routing -----------------------------------------------------------------------------

def test_routes_by_file_name_including_hyphens_and_folders(runtime):
    assert runtime.call("GET", "/hello").json() == {"ok": True}
    assert runtime.call("POST", "/async-hello").json() == {"async": True}
    assert runtime.call("GET", "/sub/nested").json() == {"nested": "/sub/nested"}


def test_unknown_path_is_json_404(runtime):
    answer = runtime.call("GET", "/nope")
    assert answer.status == 404
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["error"] == "not_found"


@pytest.mark.parametrize("path", ["/../conftest.py", "/sub/../hello", "/%2e%2e/conftest",
                                  "/shared.private", "/shared", "/shared.private.py",
                                  "//etc/passwd", "/hello.py", "/sub/./nested"])
def test_traversal_and_private_paths_never_reach_a_file(runtime, path):
    answer = runtime.call("GET", path)
    assert answer.status == 404
    assert b"Traceback" not in answer.body


def test_private_function_is_loadable_by_other_functions(runtime):
    answer = runtime.call("POST", "/uses-shared", body={"name": "ada"})
    assert answer.json() == {"said": "hello ada from a private function"}


def test_aliases_answer_like_their_target(serve):
    served = serve(aliases={"/hi": "/hello", "/ghost": "/does-not-exist"})
    assert served.call("GET", "/hi").json() == {"ok": True}
    assert served.call("GET", "/ghost").status == 404


# --- the handler contract ------------------------------------------------------------------

def test_callback_payload_types(runtime):
    text = runtime.call("GET", "/text")
    assert (text.status, text.body) == (200, b"hello, caller")
    assert text.headers["Content-Type"] == "text/plain; charset=utf-8"
    empty = runtime.call("GET", "/empty")
    assert (empty.status, empty.body) == (200, b"")
    data = runtime.call("GET", "/hello")
    assert data.headers["Content-Type"] == "application/json"


def test_response_object_as_built(runtime):
    answer = runtime.call("GET", "/built")
    assert answer.status == 201
    assert answer.json() == {"made": True}
    assert answer.headers.get_all("X-Trace") == ["a", "b"]
    cookies = answer.headers.get_all("Set-Cookie")
    assert "session=abc; Max-Age=60; HttpOnly" in cookies
    assert "old=; Max-Age=0" in cookies


@pytest.mark.parametrize("path", ["/boom", "/err"])
def test_failures_are_500_json_without_traceback(runtime, path, caplog):
    answer = runtime.call("GET", path)
    assert answer.status == 500
    assert answer.json()["error"] == "internal_error"
    assert b"Traceback" not in answer.body and b"secret internals" not in answer.body
    if path == "/boom":
        assert "secret internals" in caplog.text  # the traceback goes to the server log only


def test_first_callback_wins_and_later_ones_are_logged(runtime, caplog):
    assert runtime.call("GET", "/twice").json() == {"first": True}
    assert "callback called again" in caplog.text


# --- event and context -----------------------------------------------------------------------

def test_event_merges_query_and_json_body_body_wins(runtime):
    answer = runtime.call("POST", "/echo?a=1&b=query", body={"b": "body", "n": 2},
                          headers={"X-Custom": "yes", "X-Forwarded-For": "10.0.0.1",
                                   "Referer": "http://x", "Cookie": "flex=1; theme=dark"})
    event = answer.json()["event"]
    assert event["a"] == "1" and event["b"] == "body" and event["n"] == 2
    headers = event["request"]["headers"]
    assert headers["x-custom"] == "yes"
    assert "x-forwarded-for" not in headers and "referer" not in headers and "connection" not in headers
    assert event["request"]["cookies"] == {"flex": "1", "theme": "dark"}


def test_event_from_form_body_with_repeated_keys(runtime):
    body = urlencode([("To", "+1"), ("Media", "a"), ("Media", "b")]).encode()
    answer = runtime.call("POST", "/echo", body=body,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    event = answer.json()["event"]
    assert event["To"] == "+1" and event["Media"] == ["a", "b"]


@pytest.mark.parametrize("body,ctype", [(b"{not json", "application/json"),
                                        (b"[1, 2]", "application/json"),
                                        (b"\xff\xfe{}", "application/json"),
                                        (b"[" * 100_000 + b"]" * 100_000, "application/json")])
def test_bad_bodies_are_400(runtime, body, ctype):
    answer = runtime.call("POST", "/echo", body=body, headers={"Content-Type": ctype})
    assert answer.status == 400
    assert answer.json()["error"] == "bad_json"


def test_unsupported_body_type_is_415(runtime):
    answer = runtime.call("POST", "/echo", body=b"--x\r\n", headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert answer.status == 415


def test_context_values_and_request_facts(runtime):
    context = runtime.call("GET", "/echo").json()
    assert context["greeting"] == "hi"
    assert context["path"] == "/echo"
    assert context["domain"] == runtime.url.split("//")[1]
    assert context["service"] is None and context["environment"] is None


def test_missing_context_setting_names_it_in_the_log(runtime, caplog):
    assert runtime.call("GET", "/missing-setting").status == 500
    assert "NOT_CONFIGURED" in caplog.text


# --- signatures on protected functions ---------------------------------------------------------

def _twilio_signature(url: str, params: dict[str, str]) -> str:
    # Independent of sfdcflex.runtime.signature: Twilio's documented algorithm.
    data = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(AUTH_TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()


def test_protected_function_needs_a_valid_signature(runtime):
    params = {"Digits": "1234", "From": "+14158675310"}
    body = urlencode(params).encode()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    url = runtime.url + "/webhook.protected"
    assert runtime.call("POST", "/webhook", body=body, headers=form).status == 403
    good = _twilio_signature(runtime.url + "/webhook", params)
    answer = runtime.call("POST", "/webhook", body=body, headers={**form, "X-Twilio-Signature": good})
    assert answer.status == 200 and answer.json() == {"accepted": "1234"}
    tampered = urlencode({**params, "Digits": "9999"}).encode()
    assert runtime.call("POST", "/webhook", body=tampered,
                        headers={**form, "X-Twilio-Signature": good}).status == 403
    assert runtime.call("POST", "/webhook", body=body,
                        headers={**form, "X-Twilio-Signature": _twilio_signature(url, params)}).status == 403


def test_protected_function_with_a_repeated_form_key(runtime):
    """Signed as twilio-python's RequestValidator signs a MultiDict: each distinct value once."""
    pairs = [("Digits", "7"), ("Media", "b"), ("Media", "a"), ("Media", "b")]
    data = runtime.url + "/webhook" + "Digits7" + "Mediaa" + "Mediab"
    good = base64.b64encode(hmac.new(AUTH_TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()
    answer = runtime.call("POST", "/webhook", body=urlencode(pairs).encode(), headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": good})
    assert answer.status == 200 and answer.json() == {"accepted": "7"}


def test_protected_function_with_json_body_uses_body_sha256(runtime):
    body = json.dumps({"Digits": "42"}).encode()
    digest = hashlib.sha256(body).hexdigest()
    target = f"/webhook?bodySHA256={digest}"
    good = _twilio_signature(runtime.url + target, {})
    headers = {"Content-Type": "application/json", "X-Twilio-Signature": good}
    assert runtime.call("POST", target, body=body, headers=headers).json() == {"accepted": "42"}
    assert runtime.call("POST", target, body=body.replace(b"42", b"43"), headers=headers).status == 403


# --- limits ----------------------------------------------------------------------------------------

def test_over_the_time_limit_is_504_and_the_worker_finishes(serve):
    served = serve(limits=Limits(timeout=0.5))
    slow = served.app.functions["slow"].module
    slow.RELEASE.clear(), slow.FINISHED.clear()
    started = time.monotonic()
    answer = served.call("POST", "/slow", body={"wait": 5})
    elapsed = time.monotonic() - started
    assert answer.status == 504 and answer.json()["error"] == "timeout"
    assert 0.45 <= elapsed < 1.5   # at the limit, and within three times it even on a busy machine
    assert not slow.FINISHED.is_set()   # answered while the function still ran
    slow.RELEASE.set()
    assert slow.FINISHED.wait(5)  # left to finish in the background


def test_over_the_concurrency_cap_is_429_at_once(serve):
    served = serve(limits=Limits(timeout=10, max_concurrency=2))
    slow = served.app.functions["slow"].module
    slow.RELEASE.clear()
    with ThreadPoolExecutor(2) as pool:
        busy = [pool.submit(served.call, "POST", "/slow", body={"wait": 5}) for _ in range(2)]
        assert slow.ENTERED.acquire(timeout=5) and slow.ENTERED.acquire(timeout=5)
        started = time.monotonic()
        refused = served.call("GET", "/hello")
        assert refused.status == 429 and time.monotonic() - started < 0.3   # refused, not queued
        assert refused.headers["Retry-After"] == "1"
        slow.RELEASE.set()
        assert [f.result(5).status for f in busy] == [200, 200]
    assert served.call("GET", "/hello").status == 200


def test_methods_other_than_get_post_options_are_405(runtime):
    for method in ("PUT", "DELETE", "PATCH", "HEAD"):
        answer = runtime.call(method, "/hello")
        assert answer.status == 405
        assert "GET" in answer.headers["Allow"]


# --- CORS ------------------------------------------------------------------------------------------

FLEX = "https://flex.twilio.com"


def test_preflight_is_answered_without_running_the_function(serve):
    served = serve(cors_origins=(FLEX,))
    answer = served.call("OPTIONS", "/boom", headers={"Origin": FLEX,
                                                      "Access-Control-Request-Method": "POST"})
    assert answer.status == 204
    assert answer.headers["Access-Control-Allow-Origin"] == FLEX
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    assert answer.headers["Vary"] == "Origin"


def test_cors_only_for_the_flex_instance(serve):
    served = serve(cors_origins=(FLEX,))
    allowed = served.call("POST", "/hello", headers={"Origin": FLEX})
    assert allowed.headers["Access-Control-Allow-Origin"] == FLEX
    assert "Server-Timing" in allowed.headers["Access-Control-Expose-Headers"]
    other = served.call("POST", "/hello", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    preflight = served.call("OPTIONS", "/hello", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in preflight.headers


# --- live reload -------------------------------------------------------------------------------------

def test_live_reload_picks_up_a_changed_function(serve, tmp_path):
    fn = tmp_path / "greet.py"
    fn.write_text("def handler(context, event, callback):\n    callback(None, 'one')\n")
    served = serve(tmp_path, live=True)
    assert served.call("GET", "/greet").body == b"one"
    fn.write_text("def handler(context, event, callback):\n    callback(None, 'two')\n")
    later = time.time() + 5  # a clearly newer mtime, whatever the file system's resolution
    os.utime(fn, (later, later))
    assert served.call("GET", "/greet").body == b"two"


def test_a_wait_outside_the_slot_leaves_it_to_others(serve):
    served = serve(limits=Limits(timeout=10, max_concurrency=1))
    waiting = served.app.functions["waits-outside"].module
    waiting.RELEASE.clear()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(served.call, "POST", "/waits-outside", body={})
        assert waiting.WAITING.acquire(timeout=5)
        assert served.call("GET", "/hello").status == 200  # the cap is 1, and it is free
        waiting.RELEASE.set()
        assert first.result(5).status == 200


def test_taking_the_slot_back_waits_for_it_then_answers_429_at_the_time_limit(serve):
    served = serve(limits=Limits(timeout=0.5, max_concurrency=1))
    waiting, slow = served.app.functions["waits-outside"].module, served.app.functions["slow"].module
    waiting.RELEASE.clear(), slow.RELEASE.clear()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(served.call, "POST", "/waits-outside", body={})
        assert waiting.WAITING.acquire(timeout=5)
        second = pool.submit(served.call, "POST", "/slow", body={"wait": 5})
        assert slow.ENTERED.acquire(timeout=5)  # holds the only slot
        waiting.RELEASE.set()
        assert first.result(5).status in (429, 504)  # never runs on past the cap
        slow.RELEASE.set()
        second.result(5)


def test_a_lone_surrogate_anywhere_in_json_is_400_and_a_pair_is_text(runtime):
    json_type = {"Content-Type": "application/json"}
    for body in (b'{"a": "\\ud800"}', b'{"a": [{"b\\udfff": 1}]}', b'{"a": [[["x", "\\udbff"]]]}'):
        answer = runtime.call("POST", "/echo", body=body, headers=json_type)
        assert answer.status == 400 and answer.json()["error"] == "bad_json", body
    paired = runtime.call("POST", "/echo", body=b'{"a": "\\ud83d\\ude00"}', headers=json_type)
    assert paired.status == 200 and paired.json()["event"]["a"] == "\U0001f600"
