"""Server-Timing (runtime/timing.py): the hops of one request in the header, in milliseconds, and
the headers every answer built with it carries: `Cache-Control: no-store` (a card or an error about
a caller must not be kept by a browser or a proxy) and, for JSON already encoded, its type."""
from __future__ import annotations

import time

from sfdcflex.runtime.errors import BadRequest
from sfdcflex.runtime.response import Response, reply_for
from sfdcflex.runtime.timing import ServerTiming


def _timed(wait: float = 0.02) -> ServerTiming:
    timing = ServerTiming()
    with timing.span("flex", 'Flex "token" check') as label:
        time.sleep(wait)
    timing.mark("cache", "hit")
    timing.mark("cache", "hit")   # the same mark twice is one hop
    with timing.span("store", "not a hop") as label:
        label[0] = None
    return timing


def _durations(header: str) -> dict[str, float]:
    return {entry.split(";")[0]: float(entry.rsplit("dur=", 1)[1])
            for entry in header.split(", ") if "dur=" in entry}


def test_the_header_lists_each_hop_once_with_its_duration_in_milliseconds():
    header = _timed(0.02).header()
    names = [entry.split(";")[0] for entry in header.split(", ")]
    assert names == ["flex", "cache", "total"]
    assert header.startswith("flex;desc=\"Flex 'token' check\";dur=")   # no double quote inside
    assert 'cache;desc="hit", total;dur=' in header
    durations = _durations(header)
    assert 19.0 <= durations["flex"] < 1000 and durations["flex"] <= durations["total"] < 1000


def test_answers_carry_no_store_and_their_status_and_json_its_type():
    timing = _timed(0.0)
    reply = timing.response({"a": 1}, 404).to_reply()
    assert reply.status == 404 and reply.body == b'{"a":1}'
    assert [name for name, _ in reply.headers] == ["Server-Timing", "Cache-Control", "Content-Type"]
    assert reply.header("Cache-Control") == "no-store"
    encoded = timing.json_response(b'{"a":1}')
    assert encoded.status == 200 and encoded.body == b'{"a":1}'
    assert encoded.headers[:2] == [("Server-Timing", encoded.header("Server-Timing")),
                                   ("Cache-Control", "no-store")]
    assert encoded.headers[2:] == [("Content-Type", "application/json; charset=utf-8")]


def test_encoded_json_goes_out_as_the_same_response_built_step_by_step_would():
    timing = _timed(0.0)
    built = timing.json_response(b'{"a":1}')
    assert reply_for(built) is built   # sent as is
    by_steps = (Response(b'{"a":1}').append_header("Server-Timing", built.header("Server-Timing"))
                .append_header("Cache-Control", "no-store")
                .append_header("Content-Type", "application/json"))
    assert reply_for(by_steps) == built
    again = timing.json_response(b'{"b":2}')   # each answer has its own header list (CORS adds)
    assert again.headers is not built.headers
    again.headers.append(("Vary", "Origin"))
    assert ("Vary", "Origin") not in timing.json_response(b"{}").headers


def test_a_description_cannot_split_the_header():
    timing = ServerTiming()
    with timing.span("sfdc", "query\r\nSet-Cookie: a=b\x00\x7f\\"):
        pass
    header = timing.json_response(b"{}").header("Server-Timing")
    assert header.startswith('sfdc;desc="querySet-Cookie: a=b";dur=')
    assert not any(ord(char) < 32 or char in "\x7f\\" for char in header)


def test_an_error_is_tagged_with_the_hops_so_far_and_no_store():
    error = _timed(0.0).tag(BadRequest("no", code="bad"))
    assert set(error.headers) == {"Server-Timing", "Cache-Control"}
    assert error.headers["Cache-Control"] == "no-store"
    assert error.headers["Server-Timing"].startswith("flex;desc=")
