"""Twilio Sync Documents over `transport.call`: fetch, create, update (with If-Match) and delete;
and Map items, which hold what must never share a name with a document (leases, used states).

Wire facts, from Twilio's Sync REST documentation: documents live at
`/v1/Services/{ServiceSid}/Documents[/{Sid or UniqueName}]`, bodies are form-encoded with
`Data` as a JSON string, errors are `{"code", "message", "more_info", "status"}`; a duplicate
unique name is 409 / 54301 and a stale `If-Match` revision is 412 / 54103. Twilio answers 429
when a service is over its rate, with `Retry-After` in seconds.
"""
from __future__ import annotations

import json
import logging
import time
import urllib.parse
from typing import TYPE_CHECKING, Callable

from .errors import (DocumentExists, DocumentNotFound, MapItemExists, NotJson, RevisionMismatch,
                     SyncCredentialsRefused, SyncError, SyncUnavailable, Unreachable)
from .transport import Reply, basic_auth, call, check_upstream_url, default_transport

if TYPE_CHECKING:
    from .transport import Sender

log = logging.getLogger("sfdcflex")
SERVICE = "Twilio Sync"
MAX_RETRY_DELAY = 2.0
MAX_MESSAGE_CHARS = 200
# Twilio's error answer -> the error it is: the first row whose status or Twilio error code
# matches; any other is a plain SyncError. 429 and 5xx never get here: they are retried first.
ERRORS: tuple[tuple[int | None, int | None, type[SyncError]], ...] = (
    (None, 54208, MapItemExists),
    (409, 54301, DocumentExists),
    (412, 54103, RevisionMismatch),
    (401, None, SyncCredentialsRefused),
    (404, None, DocumentNotFound),
)


class SyncClient:
    """A thin client for one Sync service's Documents, retrying 429 and 5xx with bounded backoff."""

    def __init__(self, sync_url: str, service_sid: str, account_sid: str, auth_token: str, *,
                 transport: Sender | None = None, timeout: float = 5.0,
                 retries: int = 3, backoff: float = 0.2, sleep: Callable[[float], None] = time.sleep) -> None:
        base = check_upstream_url("TWILIO_SYNC_URL", sync_url)
        service_url = f"{base}/v1/Services/{urllib.parse.quote(service_sid, safe='')}"
        self._documents_url = f"{service_url}/Documents"
        self._maps_url = f"{service_url}/Maps"
        self._authorization = basic_auth(account_sid, auth_token)
        self._transport = transport or default_transport()
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self._sleep = sleep

    def fetch_document(self, name: str) -> dict | None:
        """The document resource (sid, unique_name, data, revision, ...), or None when it does not exist."""
        reply = self._request("GET", self._document_url(name))
        if reply.status == 404:
            return None
        return self._resource(reply)

    def create_document(self, unique_name: str, data: dict) -> dict:
        """Create a document; DocumentExists when the name is taken."""
        form = {"UniqueName": unique_name, "Data": json.dumps(data)}
        reply = self._request("POST", self._documents_url, form=form)
        return self._resource(reply)

    def update_document(self, name: str, data: dict, if_match: str | None = None) -> dict:
        """Replace a document's data; with if_match, RevisionMismatch when someone else wrote first."""
        headers = {"If-Match": if_match} if if_match is not None else {}
        reply = self._request("POST", self._document_url(name), headers=headers,
                              form={"Data": json.dumps(data)})
        return self._resource(reply)

    def delete_document(self, name: str, if_match: str | None = None) -> bool:
        """Delete a document; False when there was none; with if_match, RevisionMismatch if it changed."""
        headers = {"If-Match": if_match} if if_match is not None else {}
        reply = self._request("DELETE", self._document_url(name), headers=headers)
        if reply.status == 404:
            return False
        if not 200 <= reply.status < 300:
            raise _error_for(reply)
        return True

    def create_map_item(self, map_name: str, key: str, data: dict, ttl: int) -> dict:
        """Add an item that Sync deletes `ttl` seconds later; MapItemExists when the key is taken.

        Creating an item whose key exists fails atomically in Sync, so this is a claim several
        instances can race for. The Map is made on first use (Sync answers 404 until then).
        """
        items_url = f"{self._maps_url}/{urllib.parse.quote(map_name, safe='')}/Items"
        form = {"Key": key, "Data": json.dumps(data), "ItemTtl": str(ttl)}
        reply = self._request("POST", items_url, form=form)
        if reply.status == 404:
            made = self._request("POST", self._maps_url, form={"UniqueName": map_name})
            if made.status != 409 and not 200 <= made.status < 300:
                raise _error_for(made)
            reply = self._request("POST", items_url, form=form)
        return self._resource(reply)

    def delete_map_item(self, map_name: str, key: str) -> bool:
        """Remove an item; False when there was none."""
        url = (f"{self._maps_url}/{urllib.parse.quote(map_name, safe='')}/Items/"
               f"{urllib.parse.quote(key, safe='')}")
        reply = self._request("DELETE", url)
        if reply.status == 404:
            return False
        if not 200 <= reply.status < 300:
            raise _error_for(reply)
        return True

    def _document_url(self, name: str) -> str:
        # "@" may stand unencoded in a path segment (RFC 3986 pchar); identities are mostly e-mails.
        return f"{self._documents_url}/{urllib.parse.quote(name, safe='@')}"

    def _resource(self, reply: Reply) -> dict:
        if not 200 <= reply.status < 300:
            raise _error_for(reply)
        try:
            resource = reply.json()
        except NotJson as error:
            raise SyncError(error.message, status=reply.status) from None
        if not isinstance(resource, dict) or not isinstance(resource.get("data"), dict):
            raise SyncError("Twilio Sync answered a document without a data object")
        return resource

    def _request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                 form: dict[str, str] | None = None) -> Reply:
        """One call, retried on 429 and 5xx only: other 4xx answers would not change on a retry."""
        for attempt in range(self._retries + 1):
            reply = self._send(method, url, headers or {}, form)
            if reply.status != 429 and reply.status < 500:
                return reply
            if attempt < self._retries:
                self._sleep(self._delay(attempt, reply))
        raise SyncUnavailable(f"Twilio Sync kept failing ({reply.status}) after {self._retries + 1} attempts",
                              status=reply.status)

    def _send(self, method: str, url: str, headers: dict[str, str], form: dict[str, str] | None) -> Reply:
        try:
            return call(self._transport, SERVICE, method, url, timeout=self._timeout, form=form,
                        headers={"Authorization": self._authorization, **headers})
        except Unreachable as error:
            raise SyncUnavailable(error.message) from None

    def _delay(self, attempt: int, reply: Reply) -> float:
        """Exponential backoff, or Twilio's Retry-After seconds when given; never more than the cap."""
        retry_after = reply.headers.get("retry-after", "")
        if retry_after.strip().isdigit():
            return min(float(retry_after), MAX_RETRY_DELAY)
        return min(self._backoff * (2 ** attempt), MAX_RETRY_DELAY)


def _error_for(reply: Reply) -> SyncError:
    """The SyncError for a Twilio error answer `{"code", "message", ...}`, from ERRORS."""
    try:
        body = reply.json()
    except NotJson:
        body = {}
    body = body if isinstance(body, dict) else {}
    twilio_code = body.get("code")
    message = str(body.get("message") or "no message")[:MAX_MESSAGE_CHARS]
    kind = next((kind for status, code, kind in ERRORS
                 if reply.status == status or (code is not None and twilio_code == code)), SyncError)
    said = {"status": reply.status, "error_code": twilio_code}
    if kind is SyncCredentialsRefused:
        log.error("Twilio Sync answered 401: check ACCOUNT_SID and AUTH_TOKEN")
        return kind("Twilio Sync refused this server's own credentials", **said)
    code = f" (error {twilio_code})" if twilio_code is not None else " (not Twilio's JSON error)"
    return kind(f"Twilio Sync answered {reply.status}{code}: {message}", **said)
