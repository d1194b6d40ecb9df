"""Build a function's `event`: query parameters merged with the body, plus the request's headers."""
from __future__ import annotations

import json
import re
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qsl

from .errors import BadRequest, UnsupportedMediaType

# Twilio strips these before a function sees them: hop-by-hop headers (RFC 9110 §7.6.1) and
# what proxies add on the way.
_DROPPED = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                      "proxy-connection", "te", "trailer", "trailers", "transfer-encoding",
                      "upgrade", "via", "referer"})
_FORM = "application/x-www-form-urlencoded"


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


def _parse_form(raw: bytes | str) -> dict[str, object]:
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        return _params(parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=1000))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"the form body cannot be read: {type(exc).__name__}", code="bad_body") from None


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


def _headers_and_cookies(headers: list[tuple[str, str]]) -> tuple[dict, dict]:
    kept: dict[str, object] = {}
    cookies: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        if key in _DROPPED or key.startswith("x-forwarded-"):
            continue
        if key == "cookie":
            jar = SimpleCookie()
            try:
                jar.load(value)
            except CookieError:
                continue  # a malformed cookie is ignored, as browsers ignore them
            cookies.update({k: m.value for k, m in jar.items()})
            continue
        held = kept.get(key)
        kept[key] = value if held is None else (held + [value] if isinstance(held, list) else [held, value])
    return kept, cookies


def build_event(request) -> dict[str, object]:
    """Query merged with body (the body wins), and `request` = {headers, cookies}."""
    query = request.target.split("?", 1)[1] if "?" in request.target else ""
    event = _parse_form(query) if query else {}
    event.update(body_params(request))
    headers, cookies = _headers_and_cookies(request.headers)
    event["request"] = {"headers": headers, "cookies": cookies}
    return event
