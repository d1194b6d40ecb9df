"""`event` as Twilio's runtime builds it: query strings (qs), cookies, headers, bodies.

Every expected value marked "twilio-run" was recorded by sending the same request to
twilio-run 5.0 with @twilio/runtime-handler 2.1.0 serving a function that calls back with its
event (`callback(null, event)`), on loopback: `npx twilio-run --port N`, then `curl -g`.
Requests go through App.dispatch in process; one test goes over real HTTP.
"""
from __future__ import annotations

from urllib.parse import quote, urlencode

import pytest

from sfdcflex.runtime.app import Request
from sfdcflex.runtime import event as event_module
from sfdcflex.runtime.event import build_event

# query string → event (without `request`), recorded from twilio-run
QS_CASES = [
    ("a=1&a=2", {"a": ["1", "2"]}),
    ("a[]=1&a[]=2", {"a": ["1", "2"]}),
    ("a[b]=c", {"a": {"b": "c"}}),
    ("a[b][c][d][e][f][g][h]=1", {"a": {"b": {"c": {"d": {"e": {"f": {"[g][h]": "1"}}}}}}}),
    ("a[1]=x&a[0]=y", {"a": ["y", "x"]}),
    ("a[5]=x&a[]=y", {"a": ["y", "x"]}),
    ("a=1&a[]=2", {"a": ["1", "2"]}),
    ("c[d]=1&c=2", {"c": [{"d": "1"}, "2"]}),
    ("c=2&c[d]=1", {"c": ["2", {"d": "1"}]}),
    ("a[b]=1&a[c]=2&a[b]=3", {"a": {"b": ["1", "3"], "c": "2"}}),
    ("a[0][b]=1&a[0][c]=2", {"a": [{"b": "1", "c": "2"}]}),
    ("a[0]=1&a[b]=2", {"a": {"0": "1", "b": "2"}}),
    ("a[b]=2&a[0]=1", {"a": {"0": "1", "b": "2"}}),
    ("a[1000]=x", {"a": {"1000": "x"}}),
    ("a[999]=x", {"a": ["x"]}),
    ("a[01]=x", {"a": {"01": "x"}}),
    ("a[-1]=x", {"a": {"-1": "x"}}),
    ("h+i=j+k&x=%41%42", {"h i": "j k", "x": "AB"}),
    ("%5Bx%5D=1&y%5bz%5d=2", {"x": "1", "y": {"z": "2"}}),
    ("a[b=c", {"a": {"[b": "c"}}),
    ("a]=b", {"a]": "b"}),
    ("a[b]]=c", {"a": {"b": "c"}}),
    ("=x&&b", {"b": ""}),
    ("flag&x=", {"flag": "", "x": ""}),
    ("a[][b]=1&a[][c]=2", {"a": [{"b": "1", "c": "2"}]}),
    ("a[b][]=1&a[b][]=2&a[b][0]=3", {"a": {"b": ["1", "2", "3"]}}),
    ("[0]=x&[b]=y", {"0": "x", "b": "y"}),
    ("a.b=1", {"a.b": "1"}),
    ("x=%ZZ&y=%", {"x": "%ZZ", "y": "%"}),
    ("a[[b]]=1", {"a": {"[b]": "1"}}),
    ("a[b[c]d]=1", {"a": {"b[c]d": "1"}}),
]


def _event(local, target: str, **kwargs) -> dict:
    answer = local.call("GET", target, **kwargs)
    assert answer.status == 200, answer.body
    return answer.json()["event"]


def test_query_strings_parse_like_twilio_runs_qs(local):
    for query, expected in QS_CASES:
        event = _event(local, "/echo?" + quote(query, safe="=&[]%+"))
        event.pop("request")
        assert event == expected, query


def test_qs_limits_hold_parameters_depth_and_array_size(local):
    many = "&".join(["a"] * 998 + ["b", "c", "d"])
    event = _event(local, "/echo?" + many)
    assert event["a"] == [""] * 998 and "c" in event and "d" not in event   # 1,000 parameters
    huge_index = _event(local, "/echo?a[99999999]=x")
    assert huge_index["a"] == {"99999999": "x"}               # no list of 100 million holes
    appended = _event(local, "/echo?" + "&".join(["a[]=v"] * 25))
    assert appended["a"] == ["v"] * 25


def test_a_percent_escape_that_is_not_utf8_is_replaced_not_refused(local):
    event = _event(local, "/echo?name=Jos%E9&ok=%C3%A9")
    assert event["name"] == "Jos\ufffd" and event["ok"] == "é"


def test_the_body_still_wins_over_the_query_and_form_bodies_stay_flat(local):
    answer = local.call("POST", "/echo?a[b]=q&x=q", body=b"x=body&c[]=1&c[]=2",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    event = answer.json()["event"]
    assert event["a"] == {"b": "q"} and event["x"] == "body"
    assert event["c[]"] == ["1", "2"]   # twilio-run parses bodies with extended: false


# Cookie header → event.request.cookies, recorded from twilio-run (values stay strings here;
# see README: Express turns a "j:{...}" value into an object, sfdcflex does not).
COOKIE_CASES = [
    ('flavour=choc chip; bad; x=1; x=2; p=%41%42; q=%E9; "quoted"=v; r="qv"',
     {"flavour": "choc chip", "x": "1", "p": "AB", "q": "%E9", '"quoted"': "v", "r": "qv"}),
    ("a=1; a=2", {"a": "1"}),
    ("bad; good=1", {"good": "1"}),
    ("x=%ZZ; y=%E2%9C%93; z=%", {"x": "%ZZ", "y": "\u2713", "z": "%"}),
    (' sp = v ; t=" q " ', {"sp": "v", "t": " q "}),
    ("=empty; k==v; m=a=b", {"": "empty", "k": "=v", "m": "a=b"}),
    ("n=1;;o=2;p", {"n": "1", "o": "2"}),
]


@pytest.mark.parametrize("header,expected", COOKIE_CASES)
def test_cookies_parse_leniently_like_twilio_run(local, header, expected):
    event = _event(local, "/echo", headers={"Cookie": header})
    assert event["request"]["cookies"] == expected
    assert event["request"]["headers"]["cookie"] == header.strip()   # the header stays too


@pytest.mark.parametrize("header,expected", [
    (";a=1", {"a": "1"}),                       # a ";" first: read past it, not forever
    ("XSRF-TOKEN=X1X", {"XSRF-TOKEN": "X1X"}),  # only blanks are trimmed
    ('a="x; b=y"', {"a": '"x', "b": 'y"'}),     # a quote on one side only stays
])
def test_cookies_parse_as_nodes_cookie_package_does_at_the_edges(local, header, expected):
    """Cases not recorded from twilio-run, read as the `cookie` package's parse reads them."""
    assert _event(local, "/echo", headers={"Cookie": header})["request"]["cookies"] == expected


def test_headers_twilio_restricts_are_dropped_and_the_rest_kept(local):
    dropped = {"X-Real-IP": "1", "X-Amzn-Trace-Id": "1", "X-Amz-Date": "1",
               "I-Twilio-Idempotency-Token": "1", "I-T-Foo": "1", "Ot-Tracer-Spanid": "1",
               "X-Accel-Buffering": "no", "Trailer": "x", "Referer": "https://flex.twilio.com/",
               "Via": "1.1 proxy", "X-Forwarded-For": "10.0.0.1", "Proxy-Authorization": "Basic x",
               "Upgrade": "h2c", "Proxy-Connection": "keep-alive"}
    kept = {"TE": "trailers", "Keep-Alive": "timeout=5", "X-Custom": "1",
            "Origin": "https://flex.twilio.com"}
    headers = _event(local, "/echo", headers={**dropped, **kept})["request"]["headers"]
    assert not {name.lower() for name in dropped} & set(headers)
    assert {name.lower(): value for name, value in kept.items()}.items() <= headers.items()


def test_expect_is_dropped_like_twilio_does(local):
    answer = local.call("POST", "/echo", body=b'{"a":1}', headers={
        "Content-Type": "application/json", "Expect": "100-continue"})
    assert "expect" not in answer.json()["event"]["request"]["headers"]


def test_form_bodies_decode_bad_escapes_like_twilio_run_and_name_the_body_when_too_big(local):
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    answer = local.call("POST", "/echo", body=b"n=Jos%E9&raw=\xe9", headers=form)
    assert answer.status == 200
    assert answer.json()["event"]["n"] == "Jos\ufffd" and answer.json()["event"]["raw"] == "\ufffd"
    too_many = local.call("POST", "/echo", body="&".join(["f=1"] * 1001).encode(), headers=form)
    assert too_many.status == 413   # body-parser's "too many parameters"
    assert too_many.json() == {"error": "too_many_fields", "message": "the form body has more than 1000 fields"}


def test_event_merges_query_and_json_body_body_wins(runtime):
    """Over real HTTP: the headers as http.client sends them, the ones Twilio drops gone."""
    answer = runtime.call("POST", "/echo?a=1&b=query", body={"b": "body", "n": 2},
                          headers={"X-Custom": "yes", "X-Forwarded-For": "10.0.0.1",
                                   "Referer": "http://x", "Cookie": "flex=1; theme=dark"})
    event = answer.json()["event"]
    assert event["a"] == "1" and event["b"] == "body" and event["n"] == 2
    headers = event["request"]["headers"]
    assert headers["x-custom"] == "yes"
    assert "x-forwarded-for" not in headers and "referer" not in headers and "connection" not in headers
    assert event["request"]["cookies"] == {"flex": "1", "theme": "dark"}


def test_event_from_form_body_with_repeated_keys(local):
    body = urlencode([("To", "+1"), ("Media", "a"), ("Media", "b")]).encode()
    answer = local.call("POST", "/echo", body=body,
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    event = answer.json()["event"]
    assert event["To"] == "+1" and event["Media"] == ["a", "b"]


NOT_AN_OBJECT = "the JSON body must be an object or an array"
NOT_JSON = "the request body is not valid JSON"


@pytest.mark.parametrize("body, message", [
    (b"{not json", NOT_JSON), (b"\xff\xfe{}", NOT_AN_OBJECT), (b"  \n ", NOT_AN_OBJECT),
    (b'"text"', NOT_AN_OBJECT), (b"null", NOT_AN_OBJECT), (b"42", NOT_AN_OBJECT), (b"{", NOT_JSON),
    (b"[", NOT_JSON), (b"{} x", NOT_JSON), (b"{}\x0c", NOT_JSON), (b"{}\xc2\xa0", NOT_JSON),
    (b'{"a": NaN}', NOT_JSON), (b"[" * 100_000 + b"]" * 100_000, NOT_JSON)])
def test_bodies_json_parse_refuses_are_400(local, body, message):
    """body-parser's strict json(): only an object or an array at the top, whitespace alone is
    no JSON, and NaN is no number."""
    answer = local.call("POST", "/echo", body=body, headers={"Content-Type": "application/json"})
    assert answer.status == 400
    assert answer.json() == {"error": "bad_json", "message": message}


def test_a_top_level_json_array_gives_its_items_as_parameters_0_1_and_so_on(local):
    answer = local.call("POST", "/echo?q=1", body=b'[1, "two"]', headers={"Content-Type": "application/json"})
    event = answer.json()["event"]
    assert (event["0"], event["1"], event["q"]) == (1, "two", "1")


@pytest.mark.parametrize("ctype", ["multipart/form-data; boundary=x", "application/xml", "text/html",
                                   "application/octet-stream", "text/plain", None, "application/vnd.api+json"])
def test_bodies_twilio_does_not_parse_reach_the_function_with_the_query_alone(local, ctype):
    """Twilio parses JSON and forms only; text/plain or untyped JSON is not read either."""
    headers = {"Content-Type": ctype} if ctype else {}
    answer = local.call("POST", "/echo?q=1", body=b'{"Token": "a"}', headers=headers)
    assert answer.status == 200
    assert {key for key in answer.json()["event"] if key != "request"} == {"q"}


@pytest.mark.parametrize("ctype", ["application/json; charset=iso-8859-1",
                                   "application/x-www-form-urlencoded; charset=utf-16"])
def test_a_json_or_form_body_in_a_charset_twilio_does_not_read_is_415(local, ctype):
    answer = local.call("POST", "/echo", body=b'{"a": 1}', headers={"Content-Type": ctype})
    charset = ctype.rsplit("=", 1)[1].upper()
    assert answer.status == 415
    assert answer.json() == {"error": "bad_charset", "message": f'unsupported charset "{charset}"'}


def test_a_form_whose_type_names_no_charset_but_other_parameters_is_read(local):
    answer = local.call("POST", "/echo", body=b"a=1", headers={
        "Content-Type": "application/x-www-form-urlencoded; boundary=unused"})
    assert answer.status == 200 and answer.json()["event"]["a"] == "1"


def test_json_blanks_around_a_json_body_are_read_past():
    """Space, tab, CR and LF around the value, as JSON.parse allows (a form feed or a no-break
    space is not JSON's whitespace: refused above)."""
    request = Request("POST", "/echo", (("Content-Type", "application/json"),), b' \t\r\n{"a": [1]}\n\r\t ')
    assert build_event(request)["a"] == [1]


def test_json_in_utf_16_or_after_a_byte_order_mark_is_read(local):
    sixteen = local.call("POST", "/echo", body='{"a": "\u00e9"}'.encode("utf-16"),
                         headers={"Content-Type": "application/json; charset=UTF-16"})
    marked = local.call("POST", "/echo", body=b'\xef\xbb\xbf{"a": 1}', headers={"Content-Type": "application/json"})
    assert sixteen.json()["event"]["a"] == "\u00e9" and marked.json()["event"]["a"] == 1


def test_a_lone_surrogate_escaped_in_json_becomes_u_fffd_and_a_pair_is_text(local):
    """JSON may escape a lone surrogate ("\\ud800"), which is no text: a function gets U+FFFD,
    as for a percent escape that is not UTF-8, and never text that fails when encoded."""
    json_type = {"Content-Type": "application/json"}
    body = b'{"a": ["\\ud800", {"k\\udfff": "\\\\ud800"}], "b": "\\ud83d\\ude00"}'
    event = local.call("POST", "/echo", body=body, headers=json_type).json()["event"]
    assert event["a"] == ["\ufffd", {"k\ufffd": "\\ud800"}] and event["b"] == "\U0001f600"
    # a list met while a value still waits to be cleaned: both are
    body = b'{"a": "\\ud800", "b": ["\\udfff"]}'
    event = local.call("POST", "/echo", body=body, headers=json_type).json()["event"]
    assert event["a"] == "\ufffd" and event["b"] == ["\ufffd"]


# As the HTTP server hands them over: one tuple, the same object for every request whose head it
# remembers (http11.parse_head); the WSGI adapter gives a list.
SAME_HEAD = (("Host", "127.0.0.1"), ("Content-Type", "Application/JSON; Charset=UTF-8"),
             ("Cookie", "a=1; b=2"), ("X-Many", "1"), ("X-Many", "2"), ("Via", "1.1 proxy"))
EVENT_OF_SAME_HEAD = {"a": 1, "request": {
    "headers": {"host": "127.0.0.1", "content-type": "Application/JSON; Charset=UTF-8",
                "cookie": "a=1; b=2", "x-many": ["1", "2"]},
    "cookies": {"a": "1", "b": "2"}, "query": {}}}


@pytest.mark.parametrize("repeated", [True, False], ids=["a header repeated", "none repeated"])
def test_a_function_changing_its_event_changes_nothing_for_the_next_request_with_that_head(repeated):
    """What an event takes from a head is worked out once per head; each request still gets
    its own headers, cookies and repeated-header lists to change."""
    head = SAME_HEAD if repeated else SAME_HEAD[:3]
    request = Request("POST", "/echo", head, b'{"a": 1}', "127.0.0.1")
    expected = build_event(request._replace(headers=list(head)))   # read afresh: no memo
    first = build_event(request)
    assert first == expected
    if repeated:
        assert first == EVENT_OF_SAME_HEAD
        first["request"]["headers"]["x-many"].append("3")
    first["request"]["headers"]["x-added"] = "1"
    first["request"]["cookies"]["a"] = "changed"
    assert build_event(request) == expected


def test_the_heads_remembered_are_the_last_ones_and_small_ones_only(monkeypatch):
    """At most MEMO_VIEWS heads are remembered, the oldest forgotten first, and none over
    MEMO_VIEW_CHARS: a client sending ever new big heads cannot make the server hold more."""
    monkeypatch.setattr(event_module, "_views", {})
    monkeypatch.setattr(event_module, "MEMO_VIEWS", 4)
    heads = [(("Host", "h"), ("X-N", str(n))) for n in range(6)]
    for head in heads:
        build_event(Request("GET", "/", head))
    assert list(event_module._views) == heads[2:]
    edge = (("Host", "h"), ("X-Pad", "p" * (event_module.MEMO_VIEW_CHARS - len("HosthX-Pad"))))
    big = (("Host", "h"), ("X-Pad", "p" * (event_module.MEMO_VIEW_CHARS - len("HosthX-Pad") + 1)))
    for head in (edge, big):
        assert build_event(Request("GET", "/", head))["request"]["headers"]["x-pad"] == head[1][1]
    assert big not in event_module._views
    assert list(event_module._views) == heads[3:] + [edge]
    # and what is remembered is what the next request with that head is built from
    event_module._views[edge] = event_module._views[edge]._replace(headers={"from": "memory"})
    assert build_event(Request("GET", "/", edge))["request"]["headers"] == {"from": "memory"}


def test_of_two_content_types_the_first_is_read_as_node_keeps_it():
    """Node's HTTP parser discards a repeated Content-Type (message.headers docs): the first
    says how the body is read."""
    head = (("Host", "h"), ("Content-Type", "application/json"), ("Content-Type", "text/plain"))
    assert build_event(Request("POST", "/", head, b'{"a": 1}'))["a"] == 1
    assert "a" not in build_event(Request("POST", "/", head[:1] + head[:0:-1], b'{"a": 1}'))


def test_headers_in_a_list_give_the_event_a_tuple_of_them_gives():
    as_list = Request("POST", "/echo", list(SAME_HEAD), b'{"a": 1}', "127.0.0.1")
    assert build_event(as_list) == EVENT_OF_SAME_HEAD
    assert build_event(as_list._replace(headers=SAME_HEAD[::-1]))["request"]["headers"]["x-many"] == ["2", "1"]
