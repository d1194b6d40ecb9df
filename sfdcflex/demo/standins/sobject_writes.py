"""The stand-in's record writes: POST /sobjects/{type} creates, PATCH /sobjects/{type}/{id} updates.

Answers as the REST API does (REST API guide, "Create a Record", "Update a Record", "Status
Codes and Error Responses"): 201 `{"id", "success": true, "errors": []}` on create, 204 with no
body on update, and a refusal as a 400 array of `{"message", "errorCode", "fields"}`. The rules
an org imposes are data tests can set: required fields, validation rules, object permissions
per user and records a user may not see (sharing).
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Callable

from .base import Response, json_response
from .soql import QueryError
from .sobjects import FIELDS, KEY_PREFIXES, Org

# What the stand-in lets a client write, per object; TaskSubtype is set on create only
# (Task object reference: TaskSubtype is "Create, Filter, Group, Nillable", not Update).
WRITABLE = {"Task": {"WhoId", "WhatId", "Subject", "TaskSubtype", "Type", "Status", "ActivityDate",
                     "CallType", "CallDurationInSeconds", "CallDisposition", "CallObject",
                     "Description"}}
CREATE_ONLY = {"Task": {"TaskSubtype"}}
DEFAULTS = {"Task": {"Status": "Not Started"}}
# Text lengths and restricted picklists, from the Task object reference.
MAX_LENGTHS = {"Subject": 255, "CallDisposition": 255, "CallObject": 255, "Description": 32_000}
PICKLISTS = {"CallType": {"Inbound", "Outbound", "Internal"},
             "TaskSubtype": {"Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn"}}
# Reference field -> the objects it may point to (WhoId: a Contact or Lead; WhatId: here, Accounts).
REFERENCES = {"WhoId": ("Contact", "Lead"), "WhatId": ("Account",)}


class Refused(Exception):
    """A write Salesforce would refuse: the status, errorCode, message and fields it names."""

    def __init__(self, status: int, error_code: str, message: str, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.status, self.error_code, self.message, self.fields = status, error_code, message, fields

    def response(self) -> Response:
        # A refused save (400) names its fields; a 404 or 405 is REST's plain {message, errorCode}.
        item: dict = {"message": self.message, "errorCode": self.error_code}
        if self.status == 400:
            item["fields"] = list(self.fields)
        return json_response(self.status, [item])


@dataclass
class OrgRules:
    """What an administrator configured: tests change these to make Salesforce refuse a write."""

    required: dict[str, set[str]] = field(default_factory=dict)  # sObject -> required fields
    # (sObject, test on the would-be record, error message): a true test refuses the save.
    validation_rules: list[tuple[str, Callable[[dict], bool], str]] = field(default_factory=list)
    # (user id, "read" | "create" | "edit", sObject) the user has no permission for
    denied: set[tuple[str, str, str]] = field(default_factory=set)
    hidden: set[tuple[str, str]] = field(default_factory=set)  # (user id, record id) not shared


class RecordWrites:
    """Creates and updates records of `Org` for a signed-in user, enforcing `OrgRules`."""

    def __init__(self, org: Org, stamps: Callable[[], dict]) -> None:
        self.org = org
        self.rules = OrgRules()
        self._stamps = stamps
        self._lock = threading.Lock()  # check-then-write must not interleave

    def answer(self, method: str, body: bytes, user: dict, sobject: str,
               record_id: str | None) -> Response:
        """The REST answer to one write (or a read of one record) by `user`."""
        try:
            if sobject not in FIELDS:
                raise Refused(404, "NOT_FOUND", "The requested resource does not exist")
            if method in ("GET", "HEAD") and record_id is not None:
                return self._read(user, sobject, record_id)
            if method == "POST" and record_id is None:
                return self._create(user, sobject, _json_fields(body))
            if method == "PATCH" and record_id is not None:
                return self._update(user, sobject, record_id, _json_fields(body))
            allowed = "HEAD,GET,PATCH" if record_id else "HEAD,GET,POST"
            raise Refused(405, "METHOD_NOT_ALLOWED",
                          f"HTTP Method '{method}' not allowed. Allowed are {allowed}")
        except Refused as refusal:
            return refusal.response()

    def check_readable(self, user: dict | None, sobjects: list[str]) -> None:
        """A query or search naming an object the user may not read fails as a whole (INVALID_TYPE)."""
        for name in sobjects:
            if user is not None and (user["Id"], "read", name.capitalize()) in self.rules.denied:
                raise QueryError(f"sObject type '{name}' is not supported. If you are attempting to "
                                 "use a custom object, be sure to append the '__c' after the entity "
                                 "name.", "INVALID_TYPE")

    def hidden_from(self, user: dict | None) -> frozenset[str]:
        """The record ids sharing keeps from this user: their queries and searches skip them."""
        user_id = (user or {}).get("Id")
        return frozenset(record for who, record in self.rules.hidden if who == user_id)

    def _read(self, user: dict, sobject: str, record_id: str) -> Response:
        record = self.org.get(sobject, record_id)
        if record is None or (user["Id"], record_id) in self.rules.hidden:
            raise Refused(404, "NOT_FOUND", "The requested resource does not exist")
        return json_response(200, {"attributes": self.org.attributes(sobject, record_id), **record})

    def _create(self, user: dict, sobject: str, fields: dict) -> Response:
        self._check_fields(sobject, fields, creating=True)
        with self._lock:
            self._check_access(user, "create", sobject)
            record = {name: None for name in FIELDS[sobject]}
            record.update(DEFAULTS.get(sobject, {}), **fields, OwnerId=user["Id"], **self._stamps())
            record.pop("Id")
            self._check_record(user, sobject, record)
            record_id = self.org.insert(sobject, record)
        return json_response(201, {"id": record_id, "success": True, "errors": []},
                             {"Location": self.org.attributes(sobject, record_id)["url"]})

    def _update(self, user: dict, sobject: str, record_id: str, fields: dict) -> Response:
        self._check_fields(sobject, fields, creating=False)
        with self._lock:
            record = self.org.get(sobject, record_id)
            if record is None or (user["Id"], record_id) in self.rules.hidden:
                raise Refused(404, "NOT_FOUND", "The requested resource does not exist")
            self._check_access(user, "edit", sobject, record_id)
            changes = {**fields, "LastModifiedDate": self._stamps()["LastModifiedDate"]}
            self._check_record(user, sobject, {**record, **changes})
            self.org.update(sobject, record_id, changes)
        return Response(204, b"", "application/json;charset=UTF-8")

    def _check_fields(self, sobject: str, fields: dict, *, creating: bool) -> None:
        if "Id" in fields:
            raise Refused(400, "INVALID_FIELD", "The Id field should not be specified in the sobject data.")
        writable = WRITABLE.get(sobject, set())
        for name, value in fields.items():
            if name not in FIELDS[sobject]:
                raise Refused(400, "INVALID_FIELD",
                              f"No such column '{name}' on sobject of type {sobject}")
            if name not in writable or (not creating and name in CREATE_ONLY.get(sobject, set())):
                raise Refused(400, "INVALID_FIELD_FOR_INSERT_UPDATE",
                              f"Unable to create/update fields: {name}. Please check the security "
                              "settings of this field and verify that it is read/write for your "
                              "profile or permission set.", (name,))
            _check_value(name, value)

    def _check_access(self, user: dict, action: str, sobject: str, record_id: str = "") -> None:
        if (user["Id"], action, sobject) in self.rules.denied:
            raise Refused(400, "INSUFFICIENT_ACCESS_OR_READONLY",
                          f"insufficient access rights on object id: {record_id}".rstrip(": "))

    def _check_record(self, user: dict, sobject: str, record: dict) -> None:
        for name, targets in REFERENCES.items():
            if name in record and record[name]:
                self._check_reference(user, name, record[name], targets)
        if record.get("WhatId") and (record.get("WhoId") or "").startswith(KEY_PREFIXES["Lead"]):
            raise Refused(400, "FIELD_INTEGRITY_EXCEPTION",
                          "Related To ID: a task on a lead cannot be related to another record",
                          ("WhatId",))
        missing = sorted(n for n in self.rules.required.get(sobject, ()) if record.get(n) in (None, ""))
        if missing:
            raise Refused(400, "REQUIRED_FIELD_MISSING",
                          f"Required fields are missing: [{', '.join(missing)}]", tuple(missing))
        for rule_object, breaks_rule, message in self.rules.validation_rules:
            if rule_object == sobject and breaks_rule(record):
                raise Refused(400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", message)

    def _check_reference(self, user: dict, name: str, value: object, targets: tuple[str, ...]) -> None:
        wanted = str(value)
        target = next((t for t in targets if wanted.startswith(KEY_PREFIXES[t])), None)
        if target is None:
            raise Refused(400, "FIELD_INTEGRITY_EXCEPTION",
                          f"{name}: id value of incorrect type: {wanted}", (name,))
        found = self.org.get(target, wanted) or (len(wanted) == 15 and self._by_id15(target, wanted))
        if not found:
            raise Refused(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", (name,))
        if (user["Id"], found["Id"]) in self.rules.hidden:
            raise Refused(400, "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY",
                          "insufficient access rights on cross-reference id", (name,))

    def _by_id15(self, sobject: str, id15: str) -> dict | None:
        return next((r for r in self.org.all(sobject) if r["Id"][:15] == id15), None)


def _json_fields(body: bytes) -> dict:
    try:
        fields = json.loads(body or b"null")
    except ValueError:
        raise Refused(400, "JSON_PARSER_ERROR", "Unexpected character in the request body") from None
    if not isinstance(fields, dict):
        raise Refused(400, "JSON_PARSER_ERROR",
                      "Cannot deserialize instance of SObject from a value that is not an object")
    return fields


def _check_value(name: str, value: object) -> None:
    if isinstance(value, str) and name in MAX_LENGTHS and len(value) > MAX_LENGTHS[name]:
        raise Refused(400, "STRING_TOO_LONG", f"{name}: data value too large: {value[:40]}... "
                      f"(max length={MAX_LENGTHS[name]})", (name,))
    if name in PICKLISTS and value is not None and value not in PICKLISTS[name]:
        raise Refused(400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                      f"{name}: bad value for restricted picklist field: {value}", (name,))
    if name == "CallDurationInSeconds" and value is not None and \
            (isinstance(value, bool) or not isinstance(value, int)):
        raise Refused(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of int from {value!r}")
