"""A local stand-in for the Twilio Sync Documents and Maps APIs (v1) of one Sync service.

Requests are form-encoded (`UniqueName`, `Data` as a JSON string, `Ttl`), answers are JSON
document resources, errors are Twilio's `{code, message, more_info, status}`. Sync keeps a
revision per document; an update or delete with `If-Match: <revision>` that is stale gets
412 with code 54103, and creating a second document with one unique name gets 409 / 54301.
A unique name must be 1-256 characters and must not look like a SID (400 / 54302): the path
segment `Documents/{Sid or UniqueName}` takes either. Map items (`Key`, `Data`, `ItemTtl`)
live in a Map; a second item with one key gets 409 / 54208.
"""
from __future__ import annotations

import copy
import datetime
import json
import re
import secrets
import threading
from urllib.parse import unquote

from .base import Handler, Request, Response, StandIn, json_response
from .sync_maps import MapBook
from .twilio_api import (DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN, DEMO_SERVICE_SID,
                                          basic_auth_ok, twilio_error, unauthenticated)

_PATH = re.compile(r"/v1/Services/(\w+)/Documents(?:/([^/]+))?/?")
_MAP_PATH = re.compile(r"/v1/Services/(\w+)/Maps(?:/([^/]+)(/Items(?:/([^/]+))?)?)?/?")
# Twilio error 54302: "The unique name must be a string with length 1-256 and not match the
# SID pattern [A-Z]{2}[a-f0-9]{32}."
_SID = re.compile(r"[A-Z]{2}[0-9a-f]{32}")
MAX_UNIQUE_NAME = 256
PUBLIC_BASE = "https://sync.twilio.com"
# Sync Document data is limited to 16 KiB of JSON.
MAX_DATA_BYTES = 16 * 1024


def _document_name(request: Request) -> str:
    """The Sid or UniqueName in the path, percent-decoded as Twilio decodes it ("a%2Bb" is "a+b")."""
    return unquote(_PATH.fullmatch(request.path)[2])


def _now(later: int = 0) -> str:
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=later)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class SyncStandIn(StandIn):
    """Twilio Sync Documents for one account and one service, kept in memory."""

    server_name = "sfdcflex-sync-stand-in"

    def __init__(self, account_sid: str = DEMO_ACCOUNT_SID, auth_token: str = DEMO_AUTH_TOKEN,
                 service_sid: str = DEMO_SERVICE_SID) -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.service_sid = service_sid
        self._documents: dict[str, dict] = {}  # sid -> document resource
        self.maps = MapBook(account_sid, service_sid)
        self._documents_lock = threading.Lock()

    @property
    def documents(self) -> dict[str, dict]:
        """A copy of every document keyed by unique name (or sid when it has none)."""
        with self._documents_lock:
            return {doc["unique_name"] or doc["sid"]: copy.deepcopy(doc)
                    for doc in self._documents.values()}

    # -- routing ------------------------------------------------------------------------------
    def route(self, request: Request) -> tuple[str | None, Handler]:
        match = _PATH.fullmatch(request.path)
        if match is None:
            return self._route_maps(request)
        by_method = ({"POST": ("create", self._create), "GET": ("list", self._list)}
                     if match[2] is None else
                     {"GET": ("fetch", self._fetch), "POST": ("update", self._update),
                      "DELETE": ("delete", self._delete)})
        return by_method.get(request.method, (None, lambda request: twilio_error(405)))

    def _route_maps(self, request: Request) -> tuple[str | None, Handler]:
        match = _MAP_PATH.fullmatch(request.path)
        if match is None:
            return None, _not_found
        if match[2] is None:
            by_method = {"POST": ("map-create", self._create_map)}
        elif match[3] is None:
            by_method = {"GET": ("map-fetch", self._map_call)}
        elif match[4] is None:
            by_method = {"POST": ("item-create", self._map_call)}
        else:
            by_method = {"GET": ("item-fetch", self._map_call), "DELETE": ("item-delete", self._map_call)}
        return by_method.get(request.method, (None, lambda request: twilio_error(405)))

    def _create_map(self, request: Request) -> Response:
        refused = self._refusal(request)
        return refused or self.maps.create_map(request.form().get("UniqueName"), _bad_unique_name)

    def _map_call(self, request: Request) -> Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        match = _MAP_PATH.fullmatch(request.path)
        name, key = unquote(match[2]), unquote(match[4]) if match[4] else None
        if match[3] is None:
            return self.maps.fetch_map(name)
        if key is None:
            form = request.form()
            data = _parse_data(form.get("Data", "{}"))
            return data if isinstance(data, Response) else self.maps.create_item(name, form, data)
        if request.method == "GET":
            return self.maps.fetch_item(name, key)
        return self.maps.delete_item(name, key)

    def fault_response(self, name: str, status: int) -> Response:
        return twilio_error(status)

    def _refusal(self, request: Request) -> Response | None:
        """401 for wrong credentials, 404 for another service; None when the call may go on."""
        if not basic_auth_ok(request, self.account_sid, self.auth_token):
            return unauthenticated()
        match = _PATH.fullmatch(request.path) or _MAP_PATH.fullmatch(request.path)
        if match[1] != self.service_sid:
            return _not_found(request)
        return None

    def _find(self, key: str) -> dict | None:
        """A live document by sid or unique name; the caller holds the lock."""
        # Sync removes a document once its Ttl has passed; here it goes when next looked for.
        now = _now()
        for sid in [sid for sid, doc in self._documents.items()
                    if doc["date_expires"] is not None and doc["date_expires"] <= now]:
            del self._documents[sid]
        if key in self._documents:
            return self._documents[key]
        return next((doc for doc in self._documents.values() if doc["unique_name"] == key), None)

    # -- endpoints ----------------------------------------------------------------------------
    def _create(self, request: Request) -> Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        form = request.form()
        data = _parse_data(form.get("Data", "{}"))
        if isinstance(data, Response):
            return data
        unique_name = form.get("UniqueName")
        ttl = form.get("Ttl", "0")
        refused = _bad_unique_name(unique_name) or _bad_ttl(ttl)
        if refused is not None:
            return refused
        sid = "ET" + secrets.token_hex(16)
        now = _now()
        expires = _now(int(ttl)) if int(ttl) else None
        document = {
            "sid": sid, "unique_name": unique_name, "account_sid": self.account_sid,
            "service_sid": self.service_sid,
            "url": f"{PUBLIC_BASE}/v1/Services/{self.service_sid}/Documents/{sid}",
            "links": {"permissions":
                      f"{PUBLIC_BASE}/v1/Services/{self.service_sid}/Documents/{sid}/Permissions"},
            "revision": "0", "data": data, "date_expires": expires, "date_created": now,
            "date_updated": now, "created_by": "system"}
        with self._documents_lock:
            if unique_name is not None and self._find(unique_name) is not None:
                return twilio_error(409, 54301, "Unique name already exists")
            self._documents[sid] = document
            return json_response(201, copy.deepcopy(document))

    def _fetch(self, request: Request) -> Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        with self._documents_lock:
            document = self._find(_document_name(request))
            if document is None:
                return _not_found(request)
            return json_response(200, copy.deepcopy(document))

    def _update(self, request: Request) -> Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        form = request.form()
        data = _parse_data(form["Data"]) if "Data" in form else None
        if isinstance(data, Response):
            return data
        with self._documents_lock:
            document = self._find(_document_name(request))
            if document is None:
                return _not_found(request)
            stale = _stale_revision(request, document)
            if stale is not None:
                return stale
            if data is not None:
                document["data"] = data
            document["revision"] = str(int(document["revision"]) + 1)
            document["date_updated"] = _now()
            return json_response(200, copy.deepcopy(document))

    def _delete(self, request: Request) -> Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        with self._documents_lock:
            document = self._find(_document_name(request))
            if document is None:
                return _not_found(request)
            stale = _stale_revision(request, document)
            if stale is not None:
                return stale
            del self._documents[document["sid"]]
        return Response(204, b"")

    def _list(self, request: Request) -> Response:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        with self._documents_lock:
            documents = [copy.deepcopy(doc) for doc in self._documents.values()]
        url = f"{PUBLIC_BASE}/v1/Services/{self.service_sid}/Documents?PageSize=50&Page=0"
        return json_response(200, {"documents": documents, "meta": {
            "page": 0, "page_size": 50, "first_page_url": url, "previous_page_url": None,
            "url": url, "next_page_url": None, "key": "documents"}})


def _bad_unique_name(name: str | None) -> Response | None:
    if name is not None and (not 1 <= len(name) <= MAX_UNIQUE_NAME or _SID.fullmatch(name)):
        return twilio_error(400, 54302, "Invalid unique name")
    return None


def _bad_ttl(ttl: str) -> Response | None:
    if not ttl.isdigit() or int(ttl) > 31_536_000:
        return twilio_error(400, 54011, "Invalid TTL: seconds from 0 to 31536000")
    return None


def _parse_data(text: str) -> dict | Response:
    """The Data parameter as a JSON object, or Twilio's 400 answer."""
    if len(text.encode("utf-8")) > MAX_DATA_BYTES:
        return twilio_error(400, 54006, "Request entity too large")
    try:
        data = json.loads(text)
    except ValueError:
        return twilio_error(400, 54008, "Invalid request body: Data must be valid JSON")
    if not isinstance(data, dict):
        return twilio_error(400, 54008, "Invalid request body: Data must be a JSON object")
    return data


def _stale_revision(request: Request, document: dict) -> Response | None:
    expected = request.header("if-match")
    if expected and expected.strip('"') != document["revision"]:
        return twilio_error(412, 54103,
                            "The revision of the Document does not match the expected revision")
    return None


def _not_found(request: Request) -> Response:
    resource = request.path[3:] if request.path.startswith("/v1/") else request.path
    return twilio_error(404, 20404, f"The requested resource {resource} was not found")
