"""The stand-in org's records and how SOQL/SOSL results are computed and shaped.

Records are plain dicts keyed by canonical field names. Results are shaped as the REST API
shapes them: every record carries `attributes {type, url}`, relationship fields are nested
objects (or null), and field names come back in their canonical spelling.
"""
from __future__ import annotations

import re
import threading
from typing import Any, Iterable

from .soql import Condition, Junction, Query, QueryError, Search, Where

FIELDS: dict[str, tuple[str, ...]] = {
    "Contact": ("Id", "Name", "FirstName", "LastName", "Title", "Phone", "MobilePhone", "Email",
                "AccountId", "CreatedDate", "LastModifiedDate"),
    "Account": ("Id", "Name", "Type", "AccountNumber", "SLA__c", "CustomerPriority__c", "Phone",
                "CreatedDate", "LastModifiedDate"),
    "User": ("Id", "Username", "Name", "FirstName", "LastName", "Email", "IsActive",
             "CreatedDate", "LastModifiedDate"),
    "Lead": ("Id", "Name", "FirstName", "LastName", "Title", "Company", "Phone", "MobilePhone",
             "Email", "Status", "CreatedDate", "LastModifiedDate"),
    "Task": ("Id", "WhoId", "WhatId", "OwnerId", "Subject", "TaskSubtype", "Type", "Status",
             "ActivityDate", "CallType", "CallDurationInSeconds", "CallDisposition", "CallObject",
             "Description", "CreatedDate", "LastModifiedDate"),
}
# relationship name -> (foreign key field, target object), per object
RELATIONSHIPS: dict[str, dict[str, tuple[str, str]]] = {
    "Contact": {"Account": ("AccountId", "Account")},
}
PHONE_FIELDS: dict[str, tuple[str, ...]] = {
    "Contact": ("Phone", "MobilePhone"), "Account": ("Phone",), "User": (),
    "Lead": ("Phone", "MobilePhone"), "Task": (),
}
EMAIL_FIELDS: dict[str, tuple[str, ...]] = {
    "Contact": ("Email",), "Account": (), "User": ("Email",), "Lead": ("Email",), "Task": (),
}
KEY_PREFIXES = {"Account": "001", "Contact": "003", "User": "005", "Lead": "00Q", "Task": "00T"}
_CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# SOSL finds a phone by the searched number's last this many digits: its local number.
MIN_PHONE_DIGITS = 7


def id18(id15: str) -> str:
    """The 18-character form of a 15-character Salesforce id (case-safe checksum suffix)."""
    suffix = ""
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = sum(1 << position for position, char in enumerate(chunk) if char.isupper())
        suffix += _CHECKSUM_ALPHABET[bits]
    return id15 + suffix


def new_id(prefix: str, serial: int) -> str:
    """A well-formed 18-character id: key prefix, pod '5e', zero padding, base62 serial."""
    digits = ""
    while serial:
        serial, remainder = divmod(serial, 62)
        digits = _BASE62[remainder] + digits
    return id18(prefix + "5e" + "00000" + digits.rjust(5, "0"))


def digits_of(text: str | None) -> str:
    return re.sub(r"\D", "", text or "")


class Org:
    """The org's records in memory, guarded by one lock; queries read a consistent view."""

    def __init__(self, api_version: str) -> None:
        self.api_version = api_version
        self.records: dict[str, dict[str, dict]] = {name: {} for name in FIELDS}
        self.unindexed: set[str] = set()
        self._serial = 0
        self._lock = threading.Lock()

    def insert(self, sobject: str, fields: dict, *, indexed: bool = True,
               record_id: str | None = None) -> str:
        """Store a record and return its id (a fresh well-formed one unless given)."""
        with self._lock:
            self._serial += 1
            record_id = record_id or new_id(KEY_PREFIXES[sobject], self._serial)
            self.records[sobject][record_id] = {"Id": record_id, **fields}
            if not indexed:
                self.unindexed.add(record_id)
            return record_id

    def get(self, sobject: str, record_id: str) -> dict | None:
        with self._lock:
            record = self.records[sobject].get(record_id)
            return dict(record) if record else None

    def all(self, sobject: str) -> list[dict]:
        """Copies of every record of `sobject`, in insertion order."""
        with self._lock:
            return [dict(record) for record in self.records[sobject].values()]

    # -- SOQL ---------------------------------------------------------------------------------
    def query(self, query: Query, hidden: frozenset[str] = frozenset()) -> list[dict]:
        """Run a parsed SOQL query and shape the rows as the REST API does; `hidden` ids are not shared."""
        sobject = canonical_object(query.sobject)
        fields = [canonical_path(sobject, name) for name in query.fields]
        with self._lock:
            rows = [row for row in self.records[sobject].values() if row["Id"] not in hidden]
            return self._select(sobject, fields, query, rows)

    def update(self, sobject: str, record_id: str, fields: dict) -> None:
        with self._lock:
            self.records[sobject][record_id].update(fields)

    def delete(self, sobject: str, record_id: str) -> None:
        with self._lock:
            self.records[sobject].pop(record_id, None)

    def search(self, search: Search, hidden: frozenset[str] = frozenset()) -> list[dict]:
        """Run a parsed SOSL search; only indexed records are found, as in Salesforce.

        IN EMAIL FIELDS matches whole addresses, case-insensitively; any other scope matches
        phone fields by their digits (the only other kind of search the integration sends).
        """
        results: list[dict] = []
        # Without RETURNING, SOSL searches every searchable object and returns Ids only.
        parts = search.returning or tuple(Query(("Id",), name) for name in FIELDS)
        for part in parts:
            sobject = canonical_object(part.sobject)
            fields = [canonical_path(sobject, name) for name in part.fields]
            with self._lock:
                rows = [row for row in self.records[sobject].values()
                        if row["Id"] not in self.unindexed and row["Id"] not in hidden
                        and _found(sobject, row, search)]
                results.extend(self._select(sobject, fields, part, rows))
        return results[:search.limit] if search.limit is not None else results

    def _select(self, sobject: str, fields: list[list[str]], query: Query,
                rows: Iterable[dict]) -> list[dict]:
        if query.where is not None:
            where = _resolve_where(sobject, query.where)
            rows = [row for row in rows if self._matches(sobject, row, where)]
        rows = list(rows)
        for key in reversed(query.order_by):
            path = canonical_path(sobject, key.field)
            present = [row for row in rows if self._value(sobject, row, path) is not None]
            missing = [row for row in rows if self._value(sobject, row, path) is None]
            present.sort(key=lambda row: _sort_key(self._value(sobject, row, path)),
                         reverse=key.descending)
            rows = present + missing if key.nulls_last else missing + present
        if query.limit is not None:
            rows = rows[:query.limit]
        return [self._shape(sobject, row, fields) for row in rows]

    def _value(self, sobject: str, row: dict, path: list[str]) -> Any:
        if len(path) == 1:
            return row.get(path[0])
        foreign_key, target = RELATIONSHIPS[sobject][path[0]]
        related = self.records[target].get(row.get(foreign_key) or "")
        return related.get(path[1]) if related else None

    def _matches(self, sobject: str, row: dict, where: Where) -> bool:
        if isinstance(where, Junction):
            results = (self._matches(sobject, row, part) for part in where.parts)
            return all(results) if where.operator == "AND" else any(results)
        value = self._value(sobject, row, where.field.split("."))
        # SOQL compares text case-insensitively; phone numbers are compared as written; an id
        # matches in its 15-character (case-sensitive) form as well as its 18-character one.
        same = _same_id if where.field.endswith("Id") else _same
        found = any(same(value, wanted) for wanted in where.values)
        return found if where.operator in ("=", "IN") else not found

    def _shape(self, sobject: str, row: dict, fields: list[list[str]]) -> dict:
        shaped: dict[str, Any] = {"attributes": self.attributes(sobject, row["Id"])}
        for path in fields:
            if len(path) == 1:
                shaped[path[0]] = row.get(path[0])
                continue
            foreign_key, target = RELATIONSHIPS[sobject][path[0]]
            related = self.records[target].get(row.get(foreign_key) or "")
            if related is None:
                shaped[path[0]] = None
                continue
            nested = shaped.get(path[0]) or {"attributes": self.attributes(target, related["Id"])}
            nested[path[1]] = related.get(path[1])
            shaped[path[0]] = nested
        return shaped

    def attributes(self, sobject: str, record_id: str) -> dict:
        return {"type": sobject,
                "url": f"/services/data/v{self.api_version}/sobjects/{sobject}/{record_id}"}


def canonical_object(name: str) -> str:
    for sobject in FIELDS:
        if sobject.lower() == name.lower():
            return sobject
    raise QueryError(f"sObject type '{name}' is not supported. If you are attempting to use a "
                     "custom object, be sure to append the '__c' after the entity name.",
                     "INVALID_TYPE")


def canonical_path(sobject: str, dotted: str) -> list[str]:
    """`Account.name` on Contact -> ["Account", "Name"], or QueryError(INVALID_FIELD)."""
    parts = dotted.split(".")
    if len(parts) == 1:
        return [_canonical_field(sobject, parts[0])]
    relationships = RELATIONSHIPS.get(sobject, {})
    for relationship, (_, target) in relationships.items():
        if len(parts) == 2 and relationship.lower() == parts[0].lower():
            return [relationship, _canonical_field(target, parts[1])]
    raise QueryError(f"Didn't understand relationship '{parts[0]}' in field path. If you are "
                     "attempting to use a custom relationship, be sure to append the '__r' "
                     "after the custom relationship name.", "INVALID_FIELD")


def _canonical_field(sobject: str, name: str) -> str:
    for field in FIELDS[sobject]:
        if field.lower() == name.lower():
            return field
    raise QueryError(f"No such column '{name}' on entity '{sobject}'. If you are attempting to "
                     "use a custom field, be sure to append the '__c' after the custom field "
                     "name.", "INVALID_FIELD")


def _found(sobject: str, row: dict, search: Search) -> bool:
    if search.scope == "EMAIL":
        wanted = search.term.strip().casefold()
        return any((row.get(f) or "").casefold() == wanted for f in EMAIL_FIELDS[sobject])
    return any(_near(row.get(f), digits_of(search.term)) for f in PHONE_FIELDS[sobject])


def _near(stored: str | None, wanted_digits: str) -> bool:
    """SOSL is a full-text search, fuzzy as Salesforce's: a phone is found when its digits hold
    the searched number's last seven (its local number) anywhere, so the same local number under
    another area code, or followed by more digits (an extension), is found too. The caller must
    check each hit's number; the integration does (lookup._confirmed)."""
    if len(wanted_digits) < MIN_PHONE_DIGITS:
        return False
    return wanted_digits[-MIN_PHONE_DIGITS:] in digits_of(stored)


def _resolve_where(sobject: str, where: Where) -> Where:
    if isinstance(where, Junction):
        return Junction(where.operator, tuple(_resolve_where(sobject, p) for p in where.parts))
    path = canonical_path(sobject, where.field)
    return Condition(".".join(path), where.operator, where.values)


def _same(value: Any, wanted: str | None) -> bool:
    if wanted is None or value is None:
        return value is wanted
    return str(value).casefold() == wanted.casefold()


def _same_id(value: Any, wanted: str | None) -> bool:
    if wanted is not None and len(wanted) == 15 and isinstance(value, str):
        return value[:15] == wanted
    return _same(value, wanted)


def _sort_key(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value
