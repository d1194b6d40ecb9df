"""Sync Maps and their items for the Twilio Sync stand-in (v1 REST, one service).

`POST /Maps {UniqueName}` makes a Map (409 / 54301 when the name is taken); `POST
/Maps/{Sid or UniqueName}/Items {Key, Data, ItemTtl}` adds an item (409 / 54208 when the key
is taken, 400 / 54209 when it is not 1-256 characters), `GET` and `DELETE
/Maps/{Map}/Items/{Key}` read and remove one. Items whose ItemTtl has passed are gone.
"""
from __future__ import annotations

import copy
import datetime
import secrets
import threading
from typing import Callable

from .base import Response, json_response
from .twilio_api import twilio_error

MAX_KEY = 256
PUBLIC_BASE = "https://sync.twilio.com"


def _now(later: int = 0) -> str:
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=later)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class MapBook:
    """The Maps of one service, kept in memory; every method answers a stand-in Response."""

    def __init__(self, account_sid: str, service_sid: str) -> None:
        self.account_sid = account_sid
        self.service_sid = service_sid
        self._maps: dict[str, dict] = {}   # sid -> map resource; its items under "_items"
        self._lock = threading.Lock()

    def create_map(self, unique_name: str | None, refused: Callable[[str | None], Response | None]) -> Response:
        bad = refused(unique_name)
        if bad is not None:
            return bad
        sid = "MP" + secrets.token_hex(16)
        resource = {"sid": sid, "unique_name": unique_name, "account_sid": self.account_sid,
                    "service_sid": self.service_sid, "revision": "0", "date_expires": None,
                    "date_created": _now(), "date_updated": _now(), "created_by": "system",
                    "url": f"{PUBLIC_BASE}/v1/Services/{self.service_sid}/Maps/{sid}", "_items": {}}
        with self._lock:
            if unique_name is not None and self._find(unique_name) is not None:
                return twilio_error(409, 54301, "Unique name already exists")
            self._maps[sid] = resource
            return json_response(201, _public(resource))

    def fetch_map(self, name: str) -> Response:
        with self._lock:
            found = self._find(name)
            return _missing(name) if found is None else json_response(200, _public(found))

    def create_item(self, name: str, form: dict[str, str], data: dict) -> Response:
        key, ttl = form.get("Key", ""), form.get("ItemTtl") or form.get("Ttl") or "0"
        if not 1 <= len(key) <= MAX_KEY:
            return twilio_error(400, 54209, "Invalid Map Item key")
        if not ttl.isdigit() or int(ttl) > 31_536_000:
            return twilio_error(400, 54011, "Invalid TTL: seconds from 0 to 31536000")
        with self._lock:
            found = self._find(name)
            if found is None:
                return _missing(name)
            items = self._live_items(found)
            if key in items:
                return twilio_error(409, 54208, "Map Item already exists")
            items[key] = {"key": key, "map_sid": found["sid"], "account_sid": self.account_sid,
                          "service_sid": self.service_sid, "data": data, "revision": "0",
                          "date_expires": _now(int(ttl)) if int(ttl) else None,
                          "date_created": _now(), "date_updated": _now(), "created_by": "system"}
            return json_response(201, copy.deepcopy(items[key]))

    def fetch_item(self, name: str, key: str) -> Response:
        with self._lock:
            found = self._find(name)
            item = None if found is None else self._live_items(found).get(key)
            return _missing(name) if item is None else json_response(200, copy.deepcopy(item))

    def delete_item(self, name: str, key: str) -> Response:
        with self._lock:
            found = self._find(name)
            if found is None or self._live_items(found).pop(key, None) is None:
                return _missing(name)
        return Response(204, b"")

    def item_keys(self, name: str) -> list[str]:
        """The keys of a Map's live items (for tests), or [] when there is no such Map."""
        with self._lock:
            found = self._find(name)
            return [] if found is None else sorted(self._live_items(found))

    def _find(self, name: str) -> dict | None:
        if name in self._maps:
            return self._maps[name]
        return next((m for m in self._maps.values() if m["unique_name"] == name), None)

    @staticmethod
    def _live_items(found: dict) -> dict[str, dict]:
        # Sync removes an item once its ItemTtl has passed; here it goes when next looked at.
        now, items = _now(), found["_items"]
        for key in [k for k, item in items.items() if item["date_expires"] and item["date_expires"] <= now]:
            del items[key]
        return items


def _public(resource: dict) -> dict:
    return {k: copy.deepcopy(v) for k, v in resource.items() if not k.startswith("_")}


def _missing(name: str) -> Response:
    return twilio_error(404, 20404, f"The requested resource /Maps/{name} was not found")
