"""Talking to the benchmark's runtime: linking its agent, and counting the upstream calls
(IAM, Sync, Salesforce) each kind of request costs, from the stand-ins' own counters."""
from __future__ import annotations

import http.client
import json
import urllib.parse
from typing import Callable

from .load import Request
from .servers import AGENT, FLEX_URL, StandIns, contact_phone

CALL_SAMPLES = 20
# The original (Twilio Functions + Sync) on every uncached lookup: validate the Flex token,
# read the Sync document, ask Salesforce who the user is, then run the SOQL query.
ORIGINAL_CALLS = {"iam": 1, "store": 1, "salesforce": 2, "total": 4}


def fetch(url: str, method: str = "GET", path: str = "/", body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    """One request on a fresh connection: status, body and the Location header."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request(method, path, body, headers or {})
        response = connection.getresponse()
        return response.status, response.read(), response.getheader("Location") or ""
    finally:
        connection.close()


# The headers Chromium 131 sends with the panel's fetch() from the Flex UI (a cross-origin POST
# of JSON, after its preflight), Host aside: the runtime reads an Origin and a dozen more on
# every real request, where a bare `Content-Type` hid what they cost (parsing, CORS, `event`).
PANEL_HEADERS = {
    "Connection": "keep-alive",
    "sec-ch-ua-platform": '"Linux"',
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/131.0.0.0 Safari/537.36",
    "sec-ch-ua": '"Google Chrome";v="131", "Chromium";v="131", "Not_A Brand";v="24"',
    "Content-Type": "application/json",
    "sec-ch-ua-mobile": "?0",
    "Accept": "*/*",
    "Origin": FLEX_URL,
    "Sec-Fetch-Site": "cross-site",
    "Sec-Fetch-Mode": "cors",
    "Sec-Fetch-Dest": "empty",
    "Referer": FLEX_URL + "/",
    "Accept-Encoding": "gzip, deflate, br, zstd",
    "Accept-Language": "en-US,en;q=0.9",
}


def contact_request(token: str, phone: str) -> Request:
    """get-contact as an agent's panel asks it, headers and all."""
    body = json.dumps({"Token": token, "phone": phone}).encode()
    return "POST", "/get-contact", body, dict(PANEL_HEADERS)


def link_agent(runtime_url: str, token: str) -> None:
    """Link the bench agent the way a browser does: /auth, the consent page, the redirect back."""
    from ..demo.standins.consent_page import submit_consent
    body = json.dumps({"Token": token, "origin": runtime_url}).encode()
    status, answer, _ = fetch(runtime_url, "POST", "/auth", body, {"Content-Type": "application/json"})
    if status != 200:
        raise RuntimeError(f"/auth answered {status}: {answer[:200]!r}")
    location = submit_consent(json.loads(answer)["authorize_url"], AGENT)
    status, answer, _ = fetch(runtime_url, "GET", location[len(runtime_url):])
    if status != 200:
        raise RuntimeError(f"/oauth-callback answered {status}: {answer[:200]!r}")


def _lookup(runtime_url: str, token: str, phone: str) -> None:
    method, path, body, headers = contact_request(token, phone)
    status, answer, _ = fetch(runtime_url, method, path, body, headers)
    if status != 200:
        raise RuntimeError(f"get-contact {phone} answered {status}: {answer[:200]!r}")


def _log_call(runtime_url: str, token: str, contact_id: str, serial: int) -> None:
    call_sid = f"CA{serial:032x}"  # a well-formed Twilio call SID per logged call
    body = json.dumps({"Token": token, "contact_id": contact_id, "call_sid": call_sid,
                       "duration": 60, "notes": "benchmark"}).encode()
    status, answer, _ = fetch(runtime_url, "POST", "/log-call", body, {"Content-Type": "application/json"})
    if status != 200:
        raise RuntimeError(f"log-call answered {status}: {answer[:200]!r}")


def _contact_id(runtime_url: str, token: str, phone: str) -> str:
    method, path, body, headers = contact_request(token, phone)
    return json.loads(fetch(runtime_url, method, path, body, headers)[1])["cust_id"]


def _counted(standins: StandIns) -> dict[str, int]:
    calls = standins.calls()
    counts = {"iam": calls["iam"].get("validate", 0), "store": sum(calls["sync"].values()),
              "salesforce": sum(calls["salesforce"].values())}
    return dict(counts, total=sum(counts.values()))


def _per_lookup(standins: StandIns, lookups: list[Callable[[], None]]) -> dict[str, float]:
    before = _counted(standins)
    for lookup in lookups:
        lookup()
    after = _counted(standins)
    return {name: (after[name] - before[name]) / len(lookups) for name in before}


def measure_upstream_calls(runtime_url: str, standins: StandIns, token: str) -> dict[str, dict]:
    """Upstream calls per get-contact, from the stand-ins' counters, for each kind of lookup."""
    numbers = [contact_phone(i) for i in range(1, CALL_SAMPLES + 1)]
    fresh = [contact_phone(i) for i in range(CALL_SAMPLES + 1, CALL_SAMPLES + 4)]

    def lookups(phones: list[str], new_token: bool = False) -> list[Callable[[], None]]:
        return [lambda p=p: _lookup(runtime_url, standins.token() if new_token else token, p)
                for p in phones]

    return {
        "first lookup after linking": _per_lookup(standins, lookups([contact_phone(0)])),
        "miss, Flex token seen before": _per_lookup(standins, lookups(numbers)),
        "miss, new Flex token": _per_lookup(standins, lookups(fresh, new_token=True)),
        "hit": _per_lookup(standins, lookups(numbers)),
        "original, every uncached lookup": dict(ORIGINAL_CALLS),
        **measure_log_calls(runtime_url, standins, token),
    }


def measure_log_calls(runtime_url: str, standins: StandIns, token: str) -> dict[str, dict]:
    """Upstream calls per log-call: a new call (query, the Contact's Account, create), then again.

    The agent's Salesforce user (whose Tasks the query looks for) is known already, as in the
    panel, which asks get-user first: that userinfo call is made once per link, not per call."""
    contact_id = _contact_id(runtime_url, token, contact_phone(0))
    status, answer, _ = fetch(runtime_url, "POST", "/get-user", json.dumps({"Token": token}).encode(),
                              {"Content-Type": "application/json"})
    if status != 200:
        raise RuntimeError(f"get-user answered {status}: {answer[:200]!r}")
    serials = range(1, CALL_SAMPLES // 4 + 1)
    logs = [lambda n=n: _log_call(runtime_url, token, contact_id, n) for n in serials]
    return {"log-call, new call": _per_lookup(standins, logs),
            "log-call, same call again": _per_lookup(standins, logs)}
