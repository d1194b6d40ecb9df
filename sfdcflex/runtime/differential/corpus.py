"""The differential corpus: the requests sent alike to twilio-run and to this runtime.

Every case names what it probes; `tags` tell the table of differences (differences.py) which
deliberate difference a case shows. The functions it calls are tests/fixtures/differential/
functions/*.js and *.py, the same programs in two languages.
"""
from __future__ import annotations

import json

from .wire import SIGNATURE, Case

FLEX = "https://flex.twilio.com"
JSON_TYPE = (("Content-Type", "application/json"),)
FORM_TYPE = (("Content-Type", "application/x-www-form-urlencoded"),)

# The answer kinds of respond.js / respond.py, one request each.
RESPOND_KINDS = (
    "string", "empty-string", "unicode-string", "object", "unicode-object", "array", "null", "true",
    "false", "nested-object", "response-empty", "response-object", "response-array", "response-string",
    "response-empty-string", "response-unicode-string", "response-bytes", "response-png", "type-plain",
    "type-csv", "type-xml", "type-html", "type-json-object", "type-json-string", "type-latin1-string",
    "type-vnd-json", "type-lowercase-name", "type-svg-string", "status-201", "status-202-text",
    "status-204", "status-204-body", "status-204-type", "status-302", "status-400", "status-404-text",
    "status-418", "status-500", "status-503", "status-599", "status-string", "status-600",
    "constructor-all", "header", "header-twice", "header-list", "header-number", "header-case",
    "set-headers", "set-headers-list", "set-headers-after-cookie", "set-headers-cookie", "cookie",
    "cookie-attrs", "cookie-two", "cookie-remove", "cookie-set-then-remove", "cookie-header",
    "cors-own", "cors-own-flex", "location", "big-string", "error", "callback-error",
    "callback-error-string", "callback-twice", "callback-nothing", "no-such-kind",
)

QUERIES = (
    "name=Ada", "a=1&a=2", "a[]=1&a[]=2", "a[b]=c", "a[b][c][d][e][f][g]=deep", "a[1]=x&a[0]=y",
    "a[25]=x", "a[1001]=x", "a=1&a[b]=2", "q=hello+world", "q=hello%20world", "q=%C3%A9t%C3%A9",
    "q=caf%E9", "q=100%", "empty=", "flag", "=nothing", "a=1&&b=2", "a.b=c", "plus=%2B",
    "semi=a;b", "uni=\u00e9", "x=%00", "kind=object&name=%E2%9C%93", "request=override",
    "__proto__=p", "constructor=c", "a[__proto__]=b", "toString=t", "hasOwnProperty=h",
    "a[]=1&a=2", "a=1&a[]=2", "a[]=", "a[=1", "a]=1", "%61=b", "a%5Bb%5D=c", "a=%",
    "Token=secret", "x=1&x=2&x=3&x=4",
)

COOKIES = (
    "a=1", "a=1; b=2", "a=1;b=2", "flavour=choc chip", 'q="quoted"', "a=1; a=2", "broken; a=1",
    "a=%C3%A9", "a=%E9", "a=%zz", "j=j:{\"x\":1}", "j=j:not-json", "__proto__=x", "=empty-name",
    "a=1; ; b=2", "a=b=c",
)


def _echo_queries() -> list[Case]:
    return [Case(f"query {query}", target=f"/echo?{query}", tags=_query_tags(query)) for query in QUERIES]


def _query_tags(query: str) -> tuple[str, ...]:
    tags = []
    if "%E9" in query or query.endswith("%") or "100%" in query:
        tags.append("bad-escape")
    if query.startswith("request="):
        tags.append("request-parameter")
    if not query.isascii():
        tags.append("refused-while-reading")
    return tuple(tags)


def _json(name: str, body: bytes, content_type: str = "application/json", query: str = "",
          tags: tuple[str, ...] = ()) -> Case:
    headers = (("Content-Type", content_type),) if content_type else ()
    return Case(name, "POST", "/echo" + (f"?{query}" if query else ""), headers, body, tags=tags)


def _bodies() -> list[Case]:
    obj = json.dumps({"Token": "t", "phone": "+15551234567", "n": 1, "f": 1.5, "t": True, "z": None,
                      "list": [1, "2"], "deep": {"a": {"b": "c"}}}).encode()
    cases = [
        _json("json object", obj),
        _json("json with charset utf-8", obj, "application/json; charset=utf-8"),
        _json("json with charset UTF-8 upper", obj, "application/json; charset=UTF-8"),
        _json("json type in capitals", obj, "Application/JSON"),
        _json("json with charset latin-1", b'{"name":"caf\xe9"}', "application/json; charset=iso-8859-1"),
        _json("json in utf-16 with a bom", '{"name":"utf16"}'.encode("utf-16"), "application/json; charset=utf-16"),
        _json("json with a utf-8 bom", b'\xef\xbb\xbf{"bom":true}'),
        _json("json whitespace only", b"   \n "),
        _json("json empty body", b""),
        _json("json top-level array", b'[1,"two",{"three":3}]'),
        _json("json top-level string", b'"just a string"'),
        _json("json top-level number", b"42"),
        _json("json null", b"null"),
        _json("json invalid", b'{"a":'),
        _json("json trailing garbage", b'{"a":1}x'),
        _json("json lone surrogate", b'{"s":"\\ud800"}', tags=("bad-escape",)),
        _json("json surrogate pair", b'{"s":"\\ud83d\\ude00"}'),
        _json("json unicode text", '{"s":"Jos\u00e9 \u2713"}'.encode()),
        _json("json invalid utf-8", b'{"s":"\xff"}'),
        _json("json duplicate keys", b'{"a":1,"a":2}'),
        _json("json nested deep", b'{"a":' * 30 + b"1" + b"}" * 30),
        _json("json body overrides query", b'{"a":"body"}', query="a=query&b=query"),
        _json("json with a request key", b'{"request":"override","x":1}', tags=("request-parameter",)),
        _json("json __proto__ key", b'{"__proto__":{"x":1},"y":2}'),
        _json("json +json type", obj, "application/vnd.api+json"),
        _json("json as text/plain", obj, "text/plain"),
        _json("json untyped", obj, ""),
        _json("json type with params", obj, "application/json; foo=bar"),
        _json("json empty object", b"{}"),
        _json("json big int", b'{"big":12345678901234567890}', tags=("big-number",)),
        _json("json float forms", b'{"a":1.0,"b":1e3,"c":-0.5}'),
    ]
    form = b"name=Ada&list=1&list=2&a[]=x&a[b]=y&plus=a+b&enc=%C3%A9&empty=&flag"
    cases += [
        _json("form", form, "application/x-www-form-urlencoded"),
        _json("form with charset utf-8", form, "application/x-www-form-urlencoded; charset=utf-8"),
        _json("form with charset latin-1", b"name=caf%E9", "application/x-www-form-urlencoded; charset=iso-8859-1"),
        _json("form type in capitals", form, "Application/X-WWW-Form-Urlencoded"),
        _json("form invalid escape", b"a=%E9&b=%zz&c=%", "application/x-www-form-urlencoded"),
        _json("form body overrides query", b"a=body", "application/x-www-form-urlencoded", query="a=query&b=q"),
        _json("form with a request field", b"request=override&x=1", "application/x-www-form-urlencoded",
              tags=("request-parameter",)),
        _json("form of 1000 fields", "&".join(f"f{i}=1" for i in range(1000)).encode(),
              "application/x-www-form-urlencoded"),
        _json("form of 1001 fields", "&".join(f"f{i}=1" for i in range(1001)).encode(),
              "application/x-www-form-urlencoded"),
        _json("form empty", b"", "application/x-www-form-urlencoded"),
        _json("form whitespace", b"  ", "application/x-www-form-urlencoded"),
        _json("form as text/plain", b"a=1&b=2", "text/plain"),
        _json("form untyped", b"a=1&b=2", ""),
        _json("multipart form", b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--XyZ--\r\n',
              "multipart/form-data; boundary=XyZ", query="q=1"),
        _json("xml body", b"<a>1</a>", "application/xml", query="q=1"),
        _json("text/xml body", b"<a>1</a>", "text/xml"),
        _json("html body", b"<p>hi</p>", "text/html"),
        _json("octet-stream body", b"\x00\x01\x02", "application/octet-stream", query="q=1"),
        _json("csv body", b"a,b\n1,2", "text/csv"),
        Case("json body on GET", "GET", "/echo", JSON_TYPE, obj),
    ]
    return cases


def _headers() -> list[Case]:
    cases = [Case(f"cookie {cookie}", headers=(("Cookie", cookie),), tags=_cookie_tags(cookie))
             for cookie in COOKIES]
    cases += [
        Case("two cookie headers", headers=(("Cookie", "a=1"), ("Cookie", "b=2"))),
        Case("restricted headers", headers=(
            ("X-Forwarded-For", "1.2.3.4"), ("X-Real-IP", "1.2.3.4"), ("Via", "1.1 proxy"),
            ("Referer", "https://example.com/"), ("X-Amzn-Trace-Id", "t"), ("I-Twilio-Idempotency-Token", "i"),
            ("OT-Tracer", "o"), ("X-Accel-Buffering", "no"), ("Proxy-Authorization", "Basic x"),
            ("TE", "trailers"), ("Keep-Alive", "timeout=5"), ("Upgrade", "h2c"), ("X-Kept", "yes"))),
        Case("repeated header", headers=(("X-Many", "1"), ("X-Many", "2"), ("X-Many", "3"))),
        Case("header name cases", headers=(("X-Mixed-Case", "1"), ("x-mixed-case", "2"))),
        Case("header with blanks", headers=(("X-Blanks", "  padded  "),)),
        Case("header empty value", headers=(("X-Empty", ""),)),
        Case("authorization header", headers=(("Authorization", "Bearer abc"),)),
        Case("user agent browser", headers=(("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/120"),)),
        Case("user agent curl", headers=(("User-Agent", "curl/8.0"),)),
        Case("accept header", headers=(("Accept", "application/json"),)),
        Case("header with utf-8", headers=(("X-Name", "Jos\u00e9"),)),
        Case("x-twilio-signature seen", headers=(("X-Twilio-Signature", "abc="),)),
    ]
    return cases


def _cookie_tags(cookie: str) -> tuple[str, ...]:
    return ("json-cookie",) if "j:" in cookie else ()


def _responses() -> list[Case]:
    return [Case(f"respond {kind}", target=f"/respond?kind={kind}", tags=_respond_tags(kind))
            for kind in RESPOND_KINDS]


def _respond_tags(kind: str) -> tuple[str, ...]:
    if kind in ("error", "callback-error", "callback-error-string"):
        return ("function-error",)
    return ()


def _cors() -> list[Case]:
    origin = (("Origin", FLEX),)
    other = (("Origin", "https://evil.example"),)
    preflight = (("Access-Control-Request-Method", "POST"), ("Access-Control-Request-Headers", "content-type"))
    return [
        Case("preflight from flex", "OPTIONS", "/echo", origin + preflight, tags=("cors",)),
        Case("preflight from elsewhere", "OPTIONS", "/echo", other + preflight, tags=("cors",)),
        Case("preflight without origin", "OPTIONS", "/echo", tags=("cors",)),
        Case("preflight to an asset", "OPTIONS", "/style.css", origin + preflight, tags=("cors",)),
        Case("preflight to nothing", "OPTIONS", "/nothing-here", origin + preflight, tags=("cors",)),
        Case("preflight to the own-cors function", "OPTIONS", "/respond?kind=cors-own", origin + preflight,
             tags=("cors",)),
        Case("get from flex", "GET", "/echo?x=1", origin, tags=("cors",)),
        Case("post from flex", "POST", "/echo", origin + JSON_TYPE, b'{"a":1}', tags=("cors",)),
        Case("get from elsewhere", "GET", "/echo?x=1", other, tags=("cors",)),
        Case("own cors from flex", "GET", "/respond?kind=cors-own", origin, tags=("cors",)),
        Case("own cors from elsewhere", "GET", "/respond?kind=cors-own", other, tags=("cors",)),
        Case("own flex cors from flex", "GET", "/respond?kind=cors-own-flex", origin, tags=("cors",)),
        Case("error from flex", "GET", "/respond?kind=callback-error", origin, tags=("cors", "function-error")),
        Case("asset from flex", "GET", "/data.json", origin, tags=("cors",)),
        Case("404 from flex", "GET", "/nothing-here", origin, tags=("cors",)),
    ]


def _routes() -> list[Case]:
    signed = (("X-Twilio-Signature", SIGNATURE),)
    return [
        Case("root", target="/", tags=("root",)),
        Case("unknown path", target="/nothing-here"),
        Case("unknown nested path", target="/a/b/c"),
        Case("trailing slash", target="/echo/"),
        Case("double slash", target="//echo"),
        Case("case of the path", target="/ECHO"),
        Case("encoded path", target="/%65cho"),
        Case("dotted function", target="/dotted.name"),
        Case("nested function", target="/nested/deeper/leaf"),
        Case("nested function with query", target="/nested/deeper/leaf?x=1"),
        Case("file name with extension", target="/echo.js"),
        Case("private function by url", target="/hidden", tags=("private-function",)),
        Case("private function by file name", target="/hidden.private"),
        Case("protected function unsigned", target="/secret?name=x", tags=("unsigned",)),
        Case("protected function signed", target="/secret?name=x", headers=signed),
        Case("protected function bad signature", target="/secret?name=x",
             headers=(("X-Twilio-Signature", "bm90IGl0"),), tags=("unsigned",)),
        Case("protected function signed post", "POST", "/secret", FORM_TYPE + signed, b"name=y"),
        Case("private function and asset from a function", target="/uses-private"),
        Case("function named healthz GET", target="/healthz"),
        Case("function named healthz POST", "POST", "/healthz", JSON_TYPE, b"{}"),
        Case("put", "PUT", "/echo", JSON_TYPE, b'{"a":1}', tags=("method",)),
        Case("delete", "DELETE", "/echo", tags=("method",)),
        Case("patch", "PATCH", "/echo", JSON_TYPE, b'{"a":1}', tags=("method",)),
        Case("head of a function", "HEAD", "/echo?x=1", tags=("method",)),
        Case("head of nothing", "HEAD", "/nothing-here"),
        Case("post to an asset", "POST", "/style.css", JSON_TYPE, b"{}"),
        Case("favicon", target="/favicon.ico", tags=("favicon",)),
    ]


def _assets() -> list[Case]:
    signed = (("X-Twilio-Signature", SIGNATURE),)
    return [
        Case("asset html", target="/index.html"),
        Case("asset css", target="/style.css"),
        Case("asset js", target="/app.js"),
        Case("asset json", target="/data.json"),
        Case("asset txt", target="/notes.txt"),
        Case("asset png", target="/pixel.png"),
        Case("asset svg", target="/logo.svg"),
        Case("asset nested", target="/nested/deep.txt"),
        Case("asset with query", target="/notes.txt?v=2"),
        Case("asset head", "HEAD", "/style.css"),
        Case("asset missing", target="/missing.css"),
        Case("asset by its file name with access", target="/words.protected.txt"),
        Case("protected asset unsigned", target="/words.txt", tags=("unsigned",)),
        Case("protected asset signed", target="/words.txt", headers=signed),
        Case("private asset by url", target="/config.json"),
        Case("private asset by file name", target="/config.private.json"),
        Case("asset folder", target="/nested"),
        Case("asset folder slash", target="/nested/"),
        Case("asset path traversal", target="/nested/../style.css"),
        Case("asset encoded traversal", target="/nested/%2e%2e/style.css"),
        Case("asset with range", headers=(("Range", "bytes=0-3"),), target="/notes.txt", tags=("range",)),
        Case("index at root with query", target="/?x=1", tags=("root",)),
    ]


def _wire() -> list[Case]:
    return [
        Case("raw utf-8 in the target", target="/echo?name=Jos\u00e9", tags=("refused-while-reading",)),
        Case("fragment in the target", target="/echo?a=1#frag"),
        Case("fragment without query", target="/echo#frag"),
        Case("absolute-form target", target="http://example.com/echo?a=1"),
        Case("http/1.1 without host", host=False, tags=("refused-while-reading",)),
        Case("http/1.0 without host", target="/echo?v=10", host=False, version="HTTP/1.0"),
        Case("space-encoded path", target="/echo?a=b%20c"),
        Case("empty query", target="/echo?"),
        Case("question marks", target="/echo?a=1?b=2"),
        Case("long query value", target="/echo?long=" + "y" * 4000),
    ]


def corpus() -> list[Case]:
    """Every case, in the order they are sent; names are unique."""
    cases = (_echo_queries() + _bodies() + _headers() + _responses() + _cors() + _routes()
             + _assets() + _wire())
    names = [case.name for case in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    return cases
