"""The demo's link trace: the last OAuth link as the exchanges between its parties, redacted.

A link crosses two windows and three servers: the panel asks sfdcflex to start (`POST /auth`),
the popup visits Salesforce's authorize page, the agent consents, Salesforce sends the popup back
to sfdcflex's `/oauth-callback` with a code, and sfdcflex redeems the code at the token endpoint,
asks userinfo who it is and saves the tokens. `LinkTrace` hears each of those as it happens:
sfdcflex's answers and upstream calls through the metrics' tap (sfdcflex/metrics.py, Tap), the
Salesforce stand-in's authorize page through its `on_exchange`, the saved link through the audit.
It serves the last link to the panel's Link tab (GET /demo/link-trace) and, with `--trace`,
prints each step in the terminal.

Every value that could open something is redacted to a prefix with a note of what it is for; the
client secret is never shown at all. Only the demo runs this.
"""
from __future__ import annotations

import collections
import json
import re
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from typing import Callable

from ..runtime.response import Reply, encode_json

PATH = "/demo/link-trace"
MAX_STEPS = 40
_LINK_PATHS = frozenset({"/auth", "/oauth-callback", "/get-access-token"})
# Why each value travels, shown beside its redacted prefix (README, Linking; RFC 6749, RFC 7636).
NOTES = {
    "Token": "the agent's Flex token: sfdcflex asks Twilio IAM whose it is, so the link is bound to that agent",
    "state": "signed by sfdcflex (HMAC-SHA256) with the Flex identity, a nonce, an expiry and the panel's "
             "origin: any instance can trust it without shared memory, and it is good for one callback",
    "code_challenge": "SHA-256 of the PKCE verifier: Salesforce redeems the code only for the verifier that "
                      "hashes to it",
    "code": "a one-time authorization code, good for minutes; worthless without the verifier and the client "
            "secret, which never reach a browser",
    "code_verifier": "derived from the state's nonce and sfdcflex's secret, never stored, never sent to a "
                     "browser: only this server-to-server call carries it, so a code seen in the popup's "
                     "address cannot be redeemed by anyone else",
    "client_secret": "the connected app's secret: never shown, never in a browser",
    "access_token": "opens Salesforce's API as this user for hours; kept in sfdcflex's memory and token "
                    "store, never sent to a browser",
    "refresh_token": "gets new access tokens; Salesforce rotates it at every refresh and revokes the chain "
                     "if a spent one comes back, so sfdcflex saves the new one every time",
    "token": "the grant being revoked at Salesforce: refused or replaced tokens must not stay alive",
}
_NEVER_SHOWN = frozenset({"client_secret"})
_SECRET_PARAMS = frozenset(NOTES)
_PAGE_MESSAGE = re.compile(r"var message = (\{.*?\});", re.S)


def redact(name: str, value: str) -> str:
    """A value cut to a prefix that opens nothing (none at all for a client secret)."""
    if name in _NEVER_SHOWN or not value:
        return "(not shown)"
    keep = min(6, len(value) // 3)
    return value[:keep] + "…"


def redacted_url(url: str) -> str:
    """`url` with every secret-bearing query value redacted."""
    parts = urllib.parse.urlsplit(url)
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query = "&".join(f"{k}={redact(k, v) if k in _SECRET_PARAMS else v}" for k, v in pairs)
    return urllib.parse.urlunsplit(parts._replace(query="")).rstrip("?") + (f"?{query}" if query else "")


def carried(values: dict[str, str], names: tuple[str, ...]) -> list[dict]:
    """What a step carries: each named value present, redacted when secret, with its note."""
    return [{"name": name, "value": redact(name, values[name]) if name in _SECRET_PARAMS else values[name],
             "note": NOTES.get(name, "")} for name in names if name in values]


@dataclass
class Step:
    """One exchange: who sent what to whom, its answer, and when."""

    started: float = field(repr=False)
    source: str
    target: str
    method: str
    url: str
    status: int
    ms: float
    carries: list[dict] = field(default_factory=list)
    note: str = ""
    stopped: str = ""
    time: str = ""

    def line(self) -> str:
        """The step for the terminal, as it completes (its time is when it started)."""
        values = "  ".join(f"{c['name']}={c['value']}" for c in self.carries)
        text = (f"[link] {self.time}  {self.source} → {self.target}  {self.method} {self.url}"
                f"  {self.status}  {self.ms:.1f} ms")
        return text + (f"\n       carries {values}" if values else "")


class LinkTrace:
    """The last link's steps, for the panel and the terminal; a metrics Tap and a stand-in listener."""

    def __init__(self, store_kind: str = "json", *, printer: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store_kind = store_kind
        self._printer, self._clock = printer, clock
        self._lock = threading.Lock()
        self._steps: list[Step] = []
        self._recent: collections.deque[Step] = collections.deque(maxlen=12)
        self._state, self._identity, self._reason, self._serial = "none", "", None, 0

    # -- the metrics' Tap ---------------------------------------------------------------------
    def request(self, request, path: str, reply: Reply, seconds: float) -> None:
        if path not in _LINK_PATHS or request is None:
            return
        query = dict(urllib.parse.parse_qsl(request.target.partition("?")[2]))
        body = _json_object(request.body)
        if path == "/auth":
            location = reply.header("Location") or str(_json_object(reply.body).get("authorize_url", ""))
            sent = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
            step = self._step("popup" if request.method == "GET" else "panel", "sfdcflex", request.method,
                              redacted_url(request.target), reply.status, seconds,
                              carried({**query, **body}, ("Token",)) + carried(sent, ("state", "code_challenge")),
                              "sfdcflex checks the Flex token, signs a state and derives the PKCE verifier; "
                              "the browser gets only Salesforce's authorize URL")
            self._begin(step, "")
            if reply.status >= 400:
                self._stop(step, _json_object(reply.body))
            return
        relayed = request.method == "POST"
        step = self._step("panel (relayed code)" if relayed else "popup", "sfdcflex", request.method,
                          redacted_url(request.target), reply.status, seconds,
                          carried({**query, **body}, ("code", "state")),
                          "sfdcflex verifies the state, redeems the code and checks the Salesforce user; "
                          "its answer page posts the outcome to the panel (window.opener) and closes")
        with self._lock:
            fresh = self._state != "in_progress"
        if fresh:  # no /auth started this one: a replayed or stale redirect
            self._begin(step, "no /auth started this callback: a replayed or stale redirect")
        else:
            self._add(step)
        if reply.status >= 400:
            self._stop(step, _failure_of(reply))
        else:
            self._finish("linked", None)

    def upstream(self, service: str, method: str, url: str, body: bytes | None, reply, seconds: float) -> None:
        path = urllib.parse.urlsplit(url).path
        form = dict(urllib.parse.parse_qsl((body or b"").decode("utf-8", "replace")))
        answer = _json_object(reply.body) if reply is not None else {}
        status = reply.status if reply is not None else 0
        if service == "salesforce" and path.endswith("/oauth2/token") and form.get("grant_type") == "authorization_code":
            step = self._step("sfdcflex", "Salesforce token endpoint", method, redacted_url(url), status, seconds,
                              carried(form, ("code", "code_verifier", "client_secret", "redirect_uri"))
                              + carried(answer, ("access_token", "refresh_token")),
                              "server to server: the code, the verifier and the client secret in; the "
                              "tokens out, to sfdcflex only")
        elif service == "salesforce" and path.endswith("/oauth2/userinfo"):
            step = self._step("sfdcflex", "Salesforce userinfo", method, redacted_url(url), status, seconds,
                              carried(answer, ("preferred_username", "organization_id")),
                              "sent with the new access token (Authorization: Bearer): who is this user, in "
                              "which org? sfdcflex links only its own org's user named like the Flex agent")
        elif service == "salesforce" and path.endswith("/oauth2/revoke"):
            step = self._step("sfdcflex", "Salesforce revoke", method, redacted_url(url), status, seconds,
                              carried(form, ("token",)), "a refused or replaced grant is revoked at once")
        elif service == "sync":
            step = self._step("sfdcflex", "token store (Twilio Sync)", method, redacted_url(url), status,
                              seconds, [], "the agent's Sync document: {access_token, refresh_token}")
        else:
            return
        self._offer(step)

    def link_event(self, event: str, identity: str, sfdc_user: str) -> None:
        if event not in ("link", "relink"):
            return
        store = "JSON file" if self.store_kind == "json" else "Twilio Sync"
        step = self._step("sfdcflex", f"token store ({store})", "save", identity, 200, 0.0, [],
                          f"{event}: {identity} ↔ Salesforce user {sfdc_user}; the access and refresh "
                          "tokens are saved for this agent only" + (
                              "; the replaced grant is revoked" if event == "relink" else ""))
        with self._lock:
            self._identity = identity
        self._offer(step)

    # -- the Salesforce stand-in's authorize page ----------------------------------------------
    def standin_exchange(self, request, response, seconds: float) -> None:
        if request.path.rstrip("/") != "/services/oauth2/authorize":
            return
        params = request.query if request.method == "GET" else request.form()
        url = f"{request.path}?{urllib.parse.urlencode(request.query)}" if request.query else request.path
        if request.method == "GET":
            step = self._step("popup", "Salesforce authorize", "GET", redacted_url(url), response.status,
                              seconds, carried(params, ("state", "code_challenge")),
                              "Salesforce's login and consent page, for this connected app and redirect URI")
        else:
            back = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(response.headers.get("Location", "")).query))
            denied = back.get("error")
            step = self._step("popup", "Salesforce consent", "POST", redacted_url(url), response.status, seconds,
                              carried(back, ("code", "state")),
                              f"the agent pressed Deny: Salesforce sends the popup back with error={denied}"
                              if denied else "the agent signs in and allows: Salesforce sends the popup back "
                              "to sfdcflex's callback with a code and the same state")
        self._offer(step)

    # -- the panel's Link tab -------------------------------------------------------------------
    def endpoint(self, request) -> Reply:
        """GET /demo/link-trace: the last link's steps as JSON."""
        return Reply(200, [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
                     encode_json(self.snapshot()))

    def snapshot(self) -> dict:
        with self._lock:
            ordered = sorted(self._steps, key=lambda s: s.started)   # by when each began
            steps = [{k: v for k, v in asdict(s).items() if k != "started"} for s in ordered]
            return {"serial": self._serial, "state": self._state, "identity": self._identity,
                    "reason": self._reason, "steps": steps}

    # -- bookkeeping ------------------------------------------------------------------------------
    def _step(self, source: str, target: str, method: str, url: str, status: int, seconds: float,
              carries: list[dict], note: str) -> Step:
        now = self._clock()
        started = now - seconds
        stamp = time.strftime("%H:%M:%S", time.localtime(started)) + f".{int(started * 1000) % 1000:03d}"
        return Step(started, source, target, method, url, status, round(seconds * 1000, 1), carries, note,
                    time=stamp)

    def _begin(self, step: Step, note: str) -> None:
        """A new link: the steps heard since it began (its IAM or stand-in calls), then `step`."""
        with self._lock:
            earlier = [s for s in self._recent if s.started >= step.started]
            self._steps = sorted(earlier + [step], key=lambda s: s.started)
            self._recent.clear()
            self._state, self._identity, self._reason = "in_progress", "", None
            self._serial += 1
            if note:
                step.note = f"{note}. {step.note}"
            printed = list(self._steps)
        for shown in printed:
            self._print_text(shown.line())

    def _offer(self, step: Step) -> None:
        """A step of the link in progress, or one kept briefly in case a link turns out to own it."""
        with self._lock:
            if self._state != "in_progress":
                self._recent.append(step)
                return
        self._add(step)

    def _add(self, step: Step) -> None:
        with self._lock:
            if len(self._steps) >= MAX_STEPS:
                return
            self._steps.append(step)
        self._print_text(step.line())

    def _stop(self, step: Step, failure: dict) -> None:
        reason = {"error": str(failure.get("error", "")), "message": str(failure.get("message", ""))}
        step.stopped = f"{reason['error']}: {reason['message']}"
        self._finish("refused", reason)
        self._print_text(f"[link] stopped at {step.target} ({step.status}): {step.stopped}")

    def _finish(self, state: str, reason: dict | None) -> None:
        with self._lock:
            self._state, self._reason = state, reason
            identity = self._identity
        if state == "linked":
            self._print_text(f"[link] finished: {identity or 'the agent'} is linked")

    def _print_text(self, text: str) -> None:
        if self._printer is not None:
            self._printer(text)


def _json_object(body: bytes) -> dict:
    try:
        value = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _failure_of(reply: Reply) -> dict:
    """The error a callback answered: its JSON body, or the message its HTML page posts to the panel."""
    found = _json_object(reply.body)
    if found:
        return found
    match = _PAGE_MESSAGE.search(reply.body.decode("utf-8", "replace"))
    return _json_object(match.group(1).encode()) if match else {}
