"""What a function may hand back, as the client sees it: bytes, text, Response objects, odd
statuses; and what it may not (a header that would split the answer, a status out of range).

In process through App.dispatch; what the wire shows (repeated headers, the status line of an
unlisted status) over real HTTP.
"""
from __future__ import annotations

import http.client

import pytest

from sfdcflex.runtime.response import Reply, Response


def test_callback_payload_types(local):
    text = local.call("GET", "/text")
    assert (text.status, text.body) == (200, b"hello, caller")
    assert text.headers["Content-Type"] == "text/plain; charset=utf-8"
    empty = local.call("GET", "/empty")
    assert (empty.status, empty.body) == (200, b"")
    data = local.call("GET", "/hello")
    assert data.headers["Content-Type"] == "application/json; charset=utf-8"


def test_response_object_as_built(runtime):
    """Over real HTTP: a repeated header and each cookie go out as lines of their own."""
    answer = runtime.call("GET", "/built")
    assert answer.status == 201
    assert answer.json() == {"made": True}
    assert answer.headers.get_all("X-Trace") == ["a", "b"]
    cookies = answer.headers.get_all("Set-Cookie")
    assert cookies == ["session=abc;Max-Age=60;HttpOnly", "old=;Max-Age=0"]   # as Twilio joins them


def test_bytes_are_sent_as_octet_stream(local):
    answer = local.call("GET", "/shapes?kind=bytes")
    assert answer.status == 200 and answer.body == b"\x00\x01raw"
    assert answer.headers["Content-Type"] == "application/octet-stream"


def test_a_response_keeps_its_own_content_type_for_bytes_and_text(local):
    image = local.call("GET", "/shapes?kind=response-bytes")
    assert image.status == 200 and image.body == b"\x89PNG" and image.headers["Content-Type"] == "image/png"
    text = local.call("GET", "/shapes?kind=response-text")
    assert text.status == 202 and text.body == b"plain words"
    assert text.headers["Content-Type"] == "text/csv; charset=utf-8"   # text/csv, with its charset
    assert text.headers.get_all("X-Many") == ["1", "2"]      # a list gives one line per value


def test_no_body_and_an_unlisted_status(local):
    empty = local.call("GET", "/shapes?kind=empty")
    assert empty.status == 204 and empty.body == b""
    odd = local.call("GET", "/shapes?kind=odd-status")
    assert (odd.status, odd.body) == (599, b'{"odd":true}')
    assert local.call("GET", "/shapes").status == 200      # callback(None, None): an empty 200


def test_an_unlisted_status_goes_out_with_the_reason_unknown(runtime):
    connection = http.client.HTTPConnection(runtime.url.split("//", 1)[1], timeout=10)
    try:
        connection.request("GET", "/shapes?kind=odd-status", headers={"Connection": "close"})
        reply = connection.getresponse()
        assert (reply.version, reply.status, reply.reason) == (11, 599, "Unknown")
        assert reply.read() == b'{"odd":true}'
    finally:
        connection.close()


@pytest.mark.parametrize("kind", ["bad-header", "bad-status"])
def test_a_header_that_would_split_the_answer_or_a_status_out_of_range_is_the_functions_error(local, kind):
    answer = local.call("GET", f"/shapes?kind={kind}")
    assert answer.status == 500 and answer.json()["error"] == "internal_error"
    assert "Set-Cookie" not in answer.headers and "evil" not in answer.headers.get("X-Split", "")


def test_reply_header_lookup_ignores_case_and_answers_none_when_absent():
    reply = Reply(200, [("Content-Type", "application/json")])
    assert reply.header("content-type") == "application/json" and reply.header("X-None") is None


def _sent(response: Response) -> tuple[int, list[tuple[str, str]], bytes]:
    reply = response.to_reply()
    return reply.status, reply.headers, reply.body


@pytest.mark.parametrize("response,expected", [
    (Response("text"), (200, [("Content-Type", "text/html; charset=utf-8")], b"text")),
    (Response(""), (200, [("Content-Type", "text/html; charset=utf-8")], b"")),
    (Response({"a": 1}), (200, [("Content-Type", "application/json; charset=utf-8")], b'{"a":1}')),
    (Response(), (200, [], b"")),
    (Response(b"\x00"), (200, [("Content-Type", "application/octet-stream")], b"\x00")),
    (Response("t", headers={"Content-Type": "text/plain; charset=iso-8859-1"}),
     (200, [("Content-Type", "text/plain; charset=utf-8")], b"t")),
    (Response("<svg/>", headers={"Content-Type": "image/svg+xml"}),
     (200, [("Content-Type", "image/svg+xml; charset=utf-8")], b"<svg/>")),
    (Response({"v": 1}, headers={"Content-Type": "Application/Vnd.Api+JSON; a=b"}),
     (200, [("Content-Type", "application/vnd.api+json; a=b; charset=utf-8")], b'{"v":1}')),
    (Response({"gone": 1}, 204, {"Content-Type": "text/plain"}), (204, [], b"")),
    (Response(status_code="201"), (201, [], b"")),
    (Response(status_code=600), (600, [], b"")),
    (Response({"a": "\ud800\u00e9"}),   # a lone surrogate a function made: escaped, as JSON.stringify does
     (200, [("Content-Type", "application/json; charset=utf-8")], b'{"a":"\\ud800\xc3\xa9"}')),
])
def test_content_types_and_statuses_as_twilio_sends_them(response, expected):
    """Text is UTF-8 whatever charset was named; text without a type is HTML; a 204 has no body
    and no type; any status Node sends (100-999) goes out, digits in a string too."""
    assert _sent(response) == expected


def test_headers_a_list_is_several_values_and_of_two_spellings_the_last_wins():
    response = (Response().append_header("X-List", ["a", "b"]).append_header("X-Case", "1")
                .append_header("x-case", "2").append_header("X-Num", 5))
    assert _sent(response)[1] == [("X-List", "a"), ("X-List", "b"), ("x-case", "2"), ("X-Num", "5")]


def test_cookies_are_removed_by_name_and_replaced_by_set_headers():
    removed = Response().set_cookie("a", "1").set_cookie("b", "2", ["Path=/"]).remove_cookie("a")
    assert _sent(removed)[1] == [("Set-Cookie", "b=2;Path=/"), ("Set-Cookie", "a=;Max-Age=0")]
    replaced = Response().set_cookie("a", "1").append_header("Set-Cookie", "raw=1").set_headers({"X-A": "1"})
    assert _sent(replaced)[1] == [("X-A", "1")]


@pytest.mark.parametrize("code", [99, 1000, "2O1", True, 201.0])
def test_a_status_node_cannot_send_is_refused(code):
    with pytest.raises(ValueError):
        Response().set_status_code(code)
