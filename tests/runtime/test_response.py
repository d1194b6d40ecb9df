"""What a function may hand back, as the client sees it on the wire: bytes, text, Response objects,
odd statuses; and what it may not (a header that would split the answer, a status out of range)."""
from __future__ import annotations

import pytest

from sfdcflex.runtime.response import Reply
from tests.support.sockets import exchange


def test_bytes_are_sent_as_octet_stream(runtime):
    answer = runtime.call("GET", "/shapes?kind=bytes")
    assert answer.status == 200 and answer.body == b"\x00\x01raw"
    assert answer.headers["Content-Type"] == "application/octet-stream"


def test_a_response_keeps_its_own_content_type_for_bytes_and_text(runtime):
    image = runtime.call("GET", "/shapes?kind=response-bytes")
    assert image.status == 200 and image.body == b"\x89PNG" and image.headers["Content-Type"] == "image/png"
    text = runtime.call("GET", "/shapes?kind=response-text")
    assert text.status == 202 and text.body == b"plain words"
    assert text.headers["Content-Type"] == "text/csv"        # not replaced by text/plain
    assert text.headers.get_all("X-Many") == ["1", "2"]      # a list gives one line per value


def test_no_body_and_an_unlisted_status(runtime):
    empty = runtime.call("GET", "/shapes?kind=empty")
    assert empty.status == 204 and empty.body == b""
    odd = exchange(runtime.url, b"GET /shapes?kind=odd-status HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert odd.startswith(b"HTTP/1.1 599 Unknown\r\n") and odd.endswith(b'{"odd":true}')
    assert runtime.call("GET", "/shapes").status == 200      # callback(None, None): an empty 200


@pytest.mark.parametrize("kind", ["bad-header", "bad-status"])
def test_a_header_that_would_split_the_answer_or_a_status_out_of_range_is_the_functions_error(runtime, kind):
    answer = runtime.call("GET", f"/shapes?kind={kind}")
    assert answer.status == 500 and answer.json()["error"] == "internal_error"
    assert "Set-Cookie" not in answer.headers and "evil" not in answer.headers.get("X-Split", "")


def test_reply_header_lookup_ignores_case_and_answers_none_when_absent():
    reply = Reply(200, [("Content-Type", "application/json")])
    assert reply.header("content-type") == "application/json" and reply.header("X-None") is None
