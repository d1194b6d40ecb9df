"""Build a function's `event`: query parameters merged with the body, plus the request's headers."""
from __future__ import annotations

import json
import re
import threading
from typing import NamedTuple
from urllib.parse import parse_qsl, unquote

from .errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from .querystring import parse_query

# The headers Twilio's runtime keeps from a function (@twilio/runtime-handler 2.1.0,
# dev-runtime/checks/restricted-headers.ts): what its proxies add, and hop-by-hop headers.
# `te` and `keep-alive` are not on its list, so a function sees them.
_RESTRICTED = frozenset({"via", "referer", "transfer-encoding", "proxy-authorization",
                         "proxy-authenticate", "x-real-ip", "connection", "proxy-connection",
                         "expect", "trailer", "upgrade"})
_RESTRICTED_PREFIXES = ("i-twilio-", "i-t-", "ot-", "x-amz", "x-forwarded-", "x-accel-")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_FORM = "application/x-www-form-urlencoded"
MAX_FORM_FIELDS = 1000   # body-parser's parameterLimit


def _params(pairs: list[tuple[str, str]]) -> dict[str, object]:
    """Repeated keys become lists, as Twilio's runtime gives them."""
    params: dict[str, object] = {}
    for key, value in pairs:
        if key in params:
            held = params[key]
            params[key] = held + [value] if isinstance(held, list) else [held, value]
        else:
            params[key] = value
    return params


def _parse_form(raw: bytes) -> dict[str, object]:
    """A form body, flat as Twilio's body parser gives it (`a[]` stays a name); text that is
    not UTF-8 decodes with U+FFFD, as Node's querystring does."""
    try:
        return _params(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True,
                                 errors="replace", max_num_fields=MAX_FORM_FIELDS))
    except ValueError:   # body-parser answers 413 "too many parameters"
        raise PayloadTooLarge(f"the form body has more than {MAX_FORM_FIELDS} fields",
                              code="too_many_fields") from None


def _parse_media_type(value: str) -> tuple[str, str | None]:
    if ";" not in value:
        return value.strip().lower(), None
    media, *params = value.split(";")
    charset = None
    for param in params:
        name, _, given = param.partition("=")
        if name.strip().lower() == "charset":
            charset = given.strip().strip('"').lower()
    return media.strip().lower(), charset


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")   # JSON.parse knows no NaN or Infinity


# Made once: json.loads(text, parse_constant=...) would build a decoder on every request.
_JSON = json.JSONDecoder(parse_constant=_refuse_constant)
_JSON_BLANKS = " \t\n\r"   # JSON's whitespace (RFC 8259), the only blanks around a value


def _parse_json(body: bytes, charset: str | None) -> dict[str, object]:
    """A JSON body as body-parser's json() reads it: a utf-* charset only (415 otherwise), a
    byte-order mark skipped, bytes that are not text decoded as U+FFFD, and only an object or
    an array at the top (strict); an array's items become parameters "0", "1", ..."""
    codec = charset or "utf-8"
    try:
        if not codec.startswith("utf-"):
            raise LookupError(codec)
        text = body.decode(codec, "replace")
    except LookupError:
        raise UnsupportedMediaType(f'unsupported charset "{codec.upper()}"', code="bad_charset") from None
    text = text.removeprefix("\ufeff").strip(_JSON_BLANKS)
    if text[:1] not in ("{", "["):
        raise BadRequest("the JSON body must be an object or an array", code="bad_json")
    try:
        # JSONDecoder.decode without its two regular-expression matches for the blanks around
        # the value (stripped above): a panel's request every few seconds meets them cold.
        data, end = _JSON.scan_once(text, 0)
    except (ValueError, RecursionError, StopIteration):
        end = -1
    if end != len(text):   # not JSON, or more after the value
        raise BadRequest("the request body is not valid JSON", code="bad_json")
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        data = _without_lone_surrogates(data)
    if isinstance(data, list):
        return {str(index): item for index, item in enumerate(data)}
    return data


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_lone_surrogates(data: object) -> object:
    """`data` with each lone surrogate ("\\ud800", which json.loads keeps; valid pairs it joins)
    replaced by U+FFFD, as a bad percent escape is: Python text holding one fails wherever it is
    encoded. A stack, not recursion: the nesting is the client's choice."""
    def clean(value: object) -> object:
        return _LONE_SURROGATE.sub("\ufffd", value) if isinstance(value, str) else value

    root = [clean(data)]
    pending: list[tuple[object, object]] = [(root, 0)]
    while pending:
        holder, key = pending.pop()
        item = holder[key]
        if isinstance(item, dict):
            holder[key] = item = {clean(k): v for k, v in item.items()}
            pending += [(item, k) for k in item]
        elif isinstance(item, list):
            pending += [(item, index) for index in range(len(item))]
        else:
            holder[key] = clean(item)
    return root[0]


def body_params(request, view: _HeaderView) -> dict[str, object]:
    """The body's parameters, as Twilio's runtime parses them: JSON for application/json and a
    form for application/x-www-form-urlencoded, whatever the letter case; any other body (text,
    XML, multipart, bytes, none declared) is not read, and the function sees the query alone.
    `view`: the request's `_header_view`."""
    body = request.body
    if not body:
        return {}
    media, charset = view.media, view.charset
    if media == _FORM:
        if charset not in (None, "utf-8"):
            raise UnsupportedMediaType(f'unsupported charset "{charset.upper()}"', code="bad_charset")
        return _parse_form(body)
    if media == "application/json":
        return _parse_json(body, charset)
    return {}


def form_params(request) -> dict[str, object]:
    """Form parameters only: what Twilio's request signature covers."""
    return _parse_form(request.body) if request.body and _header_view(request.headers).media == _FORM else {}


def _cookie_value(raw: str) -> str:
    """A cookie value percent-decoded, or left as sent when it is not valid escaped UTF-8."""
    if "%" not in raw or _BAD_ESCAPE.search(raw):
        return raw
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return raw


def parse_cookies(header: str) -> dict[str, str]:
    """`name=value` pairs split on `;`, leniently, as Node's `cookie` package (Express) does.

    A value may hold spaces (`flavour=choc chip`), a pair without `=` is skipped without losing
    the others, the first of a repeated name wins (browsers send the most specific cookie
    first, RFC 6265 §5.4), surrounding quotes go, and values are percent-decoded.
    """
    cookies: dict[str, str] = {}
    index = 0
    while index < len(header):
        equals = header.find("=", index)
        if equals == -1:
            break
        end = header.find(";", index)
        if end == -1:
            end = len(header)
        elif equals > end:   # a pair with no "=": restart after the last ";" before the "="
            index = header.rfind(";", 0, equals) + 1
            continue
        name = header[index:equals].strip(" \t")
        # "__proto__" cannot be a key of the plain object Node's `cookie` fills: it is dropped.
        if name not in cookies and name != "__proto__":
            value = header[equals + 1:end].strip(" \t")
            if value[:1] == '"' and value[-1:] == '"':
                value = value[1:-1]
            cookies[name] = _cookie_value(value)
        index = end + 1
    return cookies


def _restricted(name: str) -> bool:
    return name in _RESTRICTED or name.startswith(_RESTRICTED_PREFIXES)


class _HeaderView(NamedTuple):
    """What an event takes from a request's headers, worked out once per distinct set of them."""

    media: str                   # the Content-Type's media type, lower-case
    charset: str | None          # its charset, None when it names none
    headers: dict[str, object]   # what the function sees: a copy is made per request
    cookies: dict[str, str]
    repeated: bool               # a header sent more than once: its value is a list
    size: int                    # the names' and values' characters


# An agent's panel sends the same headers on every request: the view is a dictionary lookup
# then, not a scan of every header (a panel's request every few seconds meets that code cold).
# Found by value (the HTTP server even hands over the very same tuple for a head it remembers,
# http11.parse_head). The last MEMO_VIEWS views of headers up to MEMO_VIEW_CHARS are kept (with
# their copies, some 2 MiB at most); headers in a list are read afresh each time.
MEMO_VIEWS = 512
MEMO_VIEW_CHARS = 2048
_views: dict[tuple, _HeaderView] = {}
_views_lock = threading.Lock()


def _header_view(headers) -> _HeaderView:
    if type(headers) is tuple:
        view = _views.get(headers)
        if view is not None:
            return view
        view = _read_view(headers)
        if view.size <= MEMO_VIEW_CHARS:
            with _views_lock:   # the oldest goes first: a head not sent lately
                while len(_views) >= MEMO_VIEWS:
                    del _views[next(iter(_views))]
                _views[headers] = view
        return view
    return _read_view(headers)


def _read_view(headers) -> _HeaderView:
    kept: dict[str, object] = {}
    cookies: dict[str, str] = {}
    content_type = None
    repeated = False
    size = 0
    for name, value in headers:
        size += len(name) + len(value)
        key = name.lower()
        if key == "content-type" and content_type is None:
            content_type = value   # the first one: Node drops a repeated Content-Type
        if _restricted(key):
            continue
        if key == "cookie":   # parsed into cookies, and kept as a header too, as on Twilio
            cookies = {**parse_cookies(value), **cookies}
        held = kept.get(key)
        if held is None:
            kept[key] = value
        else:
            repeated = True
            kept[key] = held + [value] if isinstance(held, list) else [held, value]
    return _HeaderView(*_parse_media_type(content_type or ""), kept, cookies, repeated, size)


def build_event(request) -> dict[str, object]:
    """Query (parsed like Twilio's qs) merged with the body (the body wins), and `request` =
    {headers, cookies, query}.

    `request.query` (not in Twilio's event) tells a function which parameters came in the URL,
    where they end up in proxy logs and browser history: secrets must not be taken from there.
    """
    query = request.target.split("?", 1)[1] if "?" in request.target else ""
    from_url = parse_query(query) if query else {}
    event = dict(from_url)
    view = _header_view(request.headers)
    if request.body:
        event.update(body_params(request, view))
    # The function's own copies: the view serves every request with the same head.
    if view.repeated:
        headers = {key: list(value) if isinstance(value, list) else value
                   for key, value in view.headers.items()}
    else:
        headers = dict(view.headers)
    event["request"] = {"headers": headers, "cookies": dict(view.cookies), "query": from_url}
    return event
