"""The one table of deliberate differences from twilio-run, and the comparison that allows only them.

sfdcflex/runtime/README.md shows this table (tests/runtime/test_differential.py checks that it is
the same); the replay of the recorded corpus fails on any difference no row allows. Each row's
`patch` turns twilio-run's answer into the answer sfdcflex must give instead, for the cases the
row covers; everything else must match field by field.
"""
from __future__ import annotations

import base64
import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import unquote

from ..querystring import parse_query
from .corpus import corpus
from .wire import SERVER, Case, body_of, normalise, send

TWILIO_RUN, RUNTIME_HANDLER = "5.0.1", "2.1.0"
FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "differential"
PROJECT = FIXTURES / "project"
RECORDING = FIXTURES / "twilio-run.json"
FLEX = "https://flex.twilio.com"   # the Flex origin the replayed runtime allows

# Headers no function sets or sees: framing, and which server answered.
IGNORED = frozenset({"date", "connection", "keep-alive", "content-length", "transfer-encoding",
                     "server", "x-powered-by", "etag", "last-modified", "server-timing"})
JSON_TYPE = "application/json; charset=utf-8"

Answer = dict
Patch = Callable[[Case, Answer, Answer], "Answer | None"]


@dataclass(frozen=True)
class Difference:
    """One deliberate difference as README shows it, and its `patch`: twilio-run's answer turned
    into the one sfdcflex gives, for a case the row covers (None for any other case)."""

    what: str
    sfdcflex: str
    twilio_run: str
    patch: Patch | None = None


def _header(answer: Answer, name: str) -> str | None:
    return next((value for key, value in answer["headers"] if key == name), None)


def _runtime_error(case: Case, answer: Answer, code: str | None = None) -> bool:
    """Whether `answer` is an error the runtime itself wrote: JSON {"error", "message"} (its
    head alone, for HEAD)."""
    if _header(answer, "content-type") != JSON_TYPE:
        return False
    if case.method == "HEAD":
        return answer.get("body") == ""
    body = body_of(answer)
    return isinstance(body, dict) and set(body) == {"error", "message"} and code in (None, body["error"])


def _as_error(theirs: Answer, ours: Answer, status: int | None = None, **headers: str) -> Answer:
    """`ours`'s JSON error in place of twilio-run's answer (its status unless one is given)."""
    return {"status": status or theirs["status"],
            "headers": [[name.replace("_", "-"), value] for name, value in headers.items()]
            + [["content-type", JSON_TYPE]], "body": ours["body"]}


def _errors(case: Case, theirs: Answer, ours: Answer) -> Answer | None:
    if theirs["status"] < 400 or theirs["status"] != ours["status"] or not _runtime_error(case, ours):
        return None
    return _as_error(theirs, ours)


def _methods(case: Case, theirs: Answer, ours: Answer) -> Answer | None:
    if "method" not in case.tags or not _runtime_error(case, ours, "method_not_allowed"):
        return None
    return _as_error(theirs, ours, 405, allow="GET, POST, OPTIONS")


def _unsigned(case: Case, theirs: Answer, ours: Answer) -> Answer | None:
    if "unsigned" not in case.tags or not _runtime_error(case, ours, "invalid_signature"):
        return None
    return _as_error(theirs, ours, 403)


def _private_function(case: Case, theirs: Answer, ours: Answer) -> Answer | None:
    if "private-function" not in case.tags or not _runtime_error(case, ours, "not_found"):
        return None
    return _as_error(theirs, ours, 404)


def _root(case: Case, theirs: Answer, ours: Answer) -> Answer | None:
    if "root" not in case.tags:
        return None
    return {"status": 200, "headers": [["cache-control", "public, max-age=0"],
                                       ["content-type", "text/html; charset=UTF-8"]],
            "body": (PROJECT / "assets" / "index.html").read_text()}


def _favicon(case: Case, theirs: Answer, ours: Answer) -> Answer | None:
    if "favicon" not in case.tags or not _runtime_error(case, ours, "not_found"):
        return None
    return _as_error(theirs, ours, 404)


def _ranges(case: Case, theirs: Answer, ours: Answer) -> Answer | None:
    if _header(theirs, "accept-ranges") is None:
        return None
    expected = dict(theirs, headers=[pair for pair in theirs["headers"]
                                     if pair[0] not in ("accept-ranges", "content-range")])
    if theirs["status"] == 206 and ours.get("body", "").startswith(theirs["body"]):
        expected.update(status=200, body=ours["body"])
    return expected


_PREFLIGHT = [["access-control-allow-methods", "GET, POST, OPTIONS"],
              ["access-control-allow-headers", "Content-Type, Authorization, X-Twilio-Signature"],
              ["access-control-max-age", "600"]]


def _cors(case: Case, theirs: Answer, ours: Answer) -> Answer | None:
    headers = theirs["headers"]
    if case.method == "OPTIONS" and theirs["status"] == 204:   # twilio-run's own preflight answer
        headers = [pair for pair in headers if not pair[0].startswith("access-control-")
                   and pair[0] != "content-type"] + _PREFLIGHT
    elif any(name == "access-control-allow-origin" for name, _ in headers):
        return None   # the function's own CORS headers, sent as they are
    origin = next((value for name, value in case.headers if name.lower() == "origin"), None)
    headers = headers + [["vary", "Origin"]]
    if origin == FLEX or "refused-while-reading" in case.tags:
        headers += [["access-control-allow-origin", FLEX], ["access-control-expose-headers", "Server-Timing"]]
    return dict(theirs, headers=headers)


def _strings(value: object, change: Callable[[str], str]) -> object:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, list):
        return [_strings(item, change) for item in value]
    if isinstance(value, dict):
        return {key: _strings(item, change) for key, item in value.items()}
    return value


def _event_patch(theirs: Answer, change: Callable[[dict], None]) -> Answer | None:
    body = body_of(theirs)
    if not isinstance(body, dict) or not isinstance(body.get("event"), dict):
        return None
    body = copy.deepcopy(body)
    change(body["event"])
    return dict(theirs, body=json.dumps(body, ensure_ascii=False))


_ESCAPES = re.compile(r"(?:%[0-9A-Fa-f]{2})+")


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _replaced(text: str) -> str:
    return _LONE_SURROGATE.sub("\ufffd", _ESCAPES.sub(lambda m: unquote(m.group(), errors="replace"), text))


def _bad_escapes(case: Case, theirs: Answer, ours: Answer) -> Answer | None:
    if "bad-escape" not in case.tags:
        return None
    return _event_patch(theirs, lambda event: event.update(
        {key: _strings(value, _replaced) for key, value in event.items() if key != "request"}))


def _json_cookies(case: Case, theirs: Answer, ours: Answer) -> Answer | None:
    if "json-cookie" not in case.tags:
        return None

    def as_sent(event: dict) -> None:
        cookies = event["request"]["cookies"]
        for name, value in cookies.items():
            if not isinstance(value, str):
                cookies[name] = "j:" + json.dumps(value, separators=(",", ":"))
    return _event_patch(theirs, as_sent)


def _sent_headers(case: Case) -> dict[str, object]:
    """event.request.headers for what the corpus sends (none of it restricted)."""
    headers: dict[str, object] = {"host": SERVER} if case.host else {}
    for name, value in case.headers:
        headers[name.lower()] = value
    if case.body or case.method in ("POST", "PUT", "PATCH"):
        headers["content-length"] = str(len(case.body))
    return headers


def _request_parameter(case: Case, theirs: Answer, ours: Answer) -> Answer | None:
    if "request-parameter" not in case.tags:
        return None
    return _event_patch(theirs, lambda event: event.update(
        request={"headers": _sent_headers(case), "cookies": {}}))


def _request_query(case: Case, theirs: Answer, ours: Answer) -> Answer | None:
    def add_query(event: dict) -> None:
        if isinstance(event.get("request"), dict):
            target = case.target.split("#", 1)[0]
            event["request"]["query"] = parse_query(target.split("?", 1)[1]) if "?" in target else {}
    return _event_patch(theirs, add_query) if case.target.startswith(("/echo", "http://")) else None


def _big_numbers(case: Case, theirs: Answer, ours: Answer) -> Answer | None:
    if b'"big"' not in case.body:
        return None
    exact = json.loads(case.body)["big"]
    return _event_patch(theirs, lambda event: event.update(big=exact) if float(exact) == float(event["big"]) else None)


def _buffers(case: Case, theirs: Answer, ours: Answer) -> Answer | None:
    try:
        body = json.loads(theirs.get("body") or "null")
    except ValueError:
        return None
    if not (isinstance(body, dict) and body.get("type") == "Buffer" and isinstance(body.get("data"), list)):
        return None
    kind = _header(theirs, "content-type")
    kind = "application/octet-stream" if kind == JSON_TYPE else kind.split(";")[0]
    return {"status": theirs["status"], "headers": [pair for pair in theirs["headers"] if pair[0] != "content-type"]
            + [["content-type", kind]], "body_base64": base64.b64encode(bytes(body["data"])).decode()}


def _json_strings(case: Case, theirs: Answer, ours: Answer) -> Answer | None:
    body = body_of(theirs)
    if not isinstance(body, str) or "json" not in (_header(theirs, "content-type") or "") or "body" not in theirs:
        return None
    if not theirs["body"].startswith('"'):
        return None
    return dict(theirs, body=body)


TABLE: tuple[Difference, ...] = (
    Difference("errors the runtime answers (no route, a refused request, a function that failed)",
               'JSON `{"error", "message"}`, the same status',
               "an HTML page or text; `{message, name, stack}` with the stack trace for a failed function",
               _errors),
    Difference("time limit, concurrency", "504 at the time limit, 429 over the concurrency cap, as in production",
               "neither"),
    Difference("methods other than GET, POST, OPTIONS (and HEAD of a function)",
               "405 with `Allow: GET, POST, OPTIONS`, as Twilio documents; HEAD serves assets", "runs the function",
               _methods),
    Difference("a `.protected` function or asset without a valid `X-Twilio-Signature`",
               "403, as in production", "served: the signature is not checked locally", _unsigned),
    Difference("a `.private` function by URL", "404, as in production: it has no URL", "runs it",
               _private_function),
    Difference("`/`", "the public `/index.html` asset (the demo's agent panel)",
               "404 unless an asset's path is `/assets/index.html`", _root),
    Difference("`/favicon.ico` when no asset has that path", "404, as for any path nothing answers",
               "a redirect to Twilio's icon", _favicon),
    Difference("an asset asked for with `Range`", "the whole asset, 200, without `Accept-Ranges`: assets are small files read at start-up",
               "206 with the range; `Accept-Ranges: bytes` on every asset", _ranges),
    Difference("a bytes body (a Buffer in JavaScript)",
               "the bytes, typed `application/octet-stream` unless the function names a type",
               'JSON `{"type": "Buffer", "data": [...]}`: its forked function process (the default) '
               "serialises the Buffer", _buffers),
    Difference("a str body with a JSON `Content-Type`", "sent as it is",
               "its forked function process encodes it again, as a JSON string", _json_strings),
    Difference("a percent escape that is not UTF-8 (`?name=Jos%E9`), a lone surrogate escaped in JSON "
               "(`\\ud800`)", "becomes U+FFFD: Python text holding either fails wherever it is encoded",
               "kept: qs keeps the raw `%E9`, JSON.parse the lone surrogate", _bad_escapes),
    Difference("cookie values", "always strings",
               "Express turns a value starting `j:` into parsed JSON", _json_cookies),
    Difference("a parameter named `request`", "ignored: a client cannot replace the headers and cookies a function reads in `event.request`",
               "replaces `event.request`", _request_parameter),
    Difference("`event.request.query`",
               "the parameters that came in the URL, so a function can refuse a secret sent there", "absent",
               _request_query),
    Difference("a JSON number beyond 2^53", "kept exact, as a Python int holds it", "rounded to a double",
               _big_numbers),
    Difference("CORS",
               "preflights and answers name only the Flex origin, with `Vary: Origin`; what a function sets "
               "itself is sent alone", "every preflight answered `*` with credentials allowed; nothing on "
               "other answers", _cors),
    Difference("413, 414, 431 and a request line or `Host` refused while reading",
               "JSON, with the same CORS headers as any answer; before the `Origin` header is read they "
               "name the one Flex origin, so Flex's browser sees the status", "a bare status or an HTML page"),
)


def markdown_table() -> str:
    """The table as sfdcflex/runtime/README.md shows it, one line per difference."""
    lines = [f"| what | sfdcflex | twilio-run {TWILIO_RUN} |", "|---|---|---|"]
    lines += [f"| {row.what} | {row.sfdcflex} | {row.twilio_run} |" for row in TABLE]
    return "\n".join(lines) + "\n"


def record_answers(cases: list[Case], address: tuple[str, int], auth_token: str,
                   replacements: dict[str, str]) -> list[dict]:
    """Each case sent to the server at `address`, with its normalised answer."""
    hostport = f"{address[0]}:{address[1]}"
    return [{"request": case.to_json(),
             "answer": normalise(send(case, address, auth_token), case.method == "HEAD", hostport,
                                 IGNORED, replacements)}
            for case in cases]


def _grouped(headers: list[list[str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in headers:
        grouped.setdefault(name, []).append(value)
    return grouped


def field_differences(expected: Answer, actual: Answer) -> list[str]:
    """Each field in which `actual` is not `expected`: status, each header, the body."""
    found = []
    if expected["status"] != actual["status"]:
        found.append(f"status {actual['status']} != {expected['status']}")
    mine, theirs = _grouped(actual["headers"]), _grouped(expected["headers"])
    for name in sorted(set(mine) | set(theirs)):
        if mine.get(name) != theirs.get(name):
            found.append(f"header {name}: {mine.get(name)} != {theirs.get(name)}")
    if body_of(expected) != body_of(actual):
        found.append(f"body {_short(body_of(actual))} != {_short(body_of(expected))}")
    return found


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 300 else text[:300] + "..."


def expected_answer(case: Case, theirs: Answer, ours: Answer) -> tuple[Answer, list[str]]:
    """twilio-run's answer with every row that covers `case` patched in, and those rows."""
    expected, used = copy.deepcopy(theirs), []
    for row in TABLE:
        if row.patch is not None:
            patched = row.patch(case, expected, ours)
            if patched is not None:
                expected = patched
                used.append(row.what)
    return expected, used


@dataclass(frozen=True)
class Replayed:
    """One case sent again: what sfdcflex must answer (twilio-run's answer with the rows that
    cover the case patched in), what it answered, and those rows."""

    case: Case
    expected: Answer
    answer: Answer
    rows: tuple[str, ...]

    def differences(self) -> list[str]:
        return [f"{self.case.name}: {found}" for found in field_differences(self.expected, self.answer)]


def replay(recorded: list[dict], address: tuple[str, int], auth_token: str) -> list[Replayed]:
    """Send each recorded case again, to the server at `address`, and set its answer beside
    the one expected. The cases are the corpus's (whose tags choose the rows), by name."""
    hostport = f"{address[0]}:{address[1]}"
    tagged = {case.name: case for case in corpus()}
    replayed = []
    for entry in recorded:
        case = tagged[entry["request"]["name"]]
        answer = normalise(send(case, address, auth_token), case.method == "HEAD", hostport, IGNORED, {})
        expected, rows = expected_answer(case, entry["answer"], answer)
        replayed.append(Replayed(case, expected, answer, tuple(rows)))
    return replayed


def load_recording() -> list[dict]:
    """The recorded cases and answers (tests/fixtures/differential/twilio-run.json)."""
    return json.loads(RECORDING.read_text(encoding="utf-8"))["cases"]
