"""Build a function's `event`: query parameters merged with the body, plus the request's headers."""
from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl, unquote

from .errors import BadRequest, UnsupportedMediaType
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
    except ValueError:
        raise BadRequest(f"the form body has more than {MAX_FORM_FIELDS} fields", code="bad_body") from None


def _content_type(request) -> str:
    value = next((v for k, v in request.headers if k.lower() == "content-type"), "")
    return value.split(";", 1)[0].strip().lower()


def _parse_json(body: bytes) -> dict[str, object]:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest("the request body is not valid JSON", code="bad_json") from None
    if not isinstance(data, dict):
        raise BadRequest("the JSON body must be an object", code="bad_json")
    if b"\\u" in body and _holds_a_lone_surrogate(data):
        # JSON may escape a lone surrogate ("\ud800"), which is no text at all: refuse it here
        # rather than fail later when a value is encoded.
        raise BadRequest("the JSON body holds an invalid \\u escape", code="bad_json")
    return data


_SURROGATE = re.compile("[\ud800-\udfff]")


def _holds_a_lone_surrogate(data: object) -> bool:
    """Whether any key or string holds a surrogate code point (json.loads joins valid pairs).

    A scan of each string, not a second encode of the whole body; a stack, not recursion,
    because the nesting is the client's choice.
    """
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def body_params(request) -> dict[str, object]:
    """The body's parameters: JSON or form, chosen by Content-Type (JSON-looking text too)."""
    body = request.body
    if not body.strip():
        return {}
    kind = _content_type(request)
    if kind == _FORM:
        return _parse_form(body)
    if kind == "application/json" or kind.endswith("+json"):
        return _parse_json(body)
    if kind in ("", "text/plain") and body.lstrip()[:1] == b"{":
        return _parse_json(body)  # fetch() with text/plain skips the CORS preflight
    if kind in ("", "text/plain"):
        return _parse_form(body)
    raise UnsupportedMediaType(f"bodies of type {kind} are not accepted; send JSON or a form")


def form_params(request) -> dict[str, object]:
    """Form parameters only: what Twilio's request signature covers."""
    return _parse_form(request.body) if _content_type(request) == _FORM and request.body else {}


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
        if name not in cookies:
            value = header[equals + 1:end].strip(" \t")
            if value[:1] == '"' and value[-1:] == '"':
                value = value[1:-1]
            cookies[name] = _cookie_value(value)
        index = end + 1
    return cookies


def _restricted(name: str) -> bool:
    return name in _RESTRICTED or name.startswith(_RESTRICTED_PREFIXES)


def _headers_and_cookies(headers: list[tuple[str, str]]) -> tuple[dict, dict]:
    kept: dict[str, object] = {}
    cookies: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        if _restricted(key):
            continue
        if key == "cookie":   # parsed into cookies, and kept as a header too, as on Twilio
            cookies = {**parse_cookies(value), **cookies}
        held = kept.get(key)
        kept[key] = value if held is None else (held + [value] if isinstance(held, list) else [held, value])
    return kept, cookies


def build_event(request) -> dict[str, object]:
    """Query (parsed like Twilio's qs) merged with the body (the body wins), and `request` =
    {headers, cookies, query}.

    `request.query` (not in Twilio's event) tells a function which parameters came in the URL,
    where they end up in proxy logs and browser history: secrets must not be taken from there.
    """
    query = request.target.split("?", 1)[1] if "?" in request.target else ""
    from_url = parse_query(query) if query else {}
    event = dict(from_url)
    event.update(body_params(request))
    headers, cookies = _headers_and_cookies(request.headers)
    event["request"] = {"headers": headers, "cookies": cookies, "query": from_url}
    return event
