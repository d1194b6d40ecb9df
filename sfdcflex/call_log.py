"""log-call: the conversation becomes a Salesforce Task on the caller's Contact or Lead, once per call.

The Task is created with the agent's own token, so the agent owns it and Salesforce applies
their permissions. It is the shape Salesforce's own telephony integrations write (Task object
reference): TaskSubtype and Type `Call`, Status `Completed`, CallType, CallDurationInSeconds,
CallDisposition and CallObject (the telephony system's call id: here the Twilio call SID).
Logging the same call again finds that Task by a SOQL query on CallObject and the agent's own
Salesforce user (OwnerId) and updates it, so a retry or a second Save never makes a second Task;
no state of our own is kept. A transferred call keeps its call SID, so each agent who takes it
logs a Task of their own: one agent's Save never touches another's notes.
"""
from __future__ import annotations

import datetime
import re
import threading
import zlib
from dataclasses import dataclass

from typing import Callable

from .cards import parse_record_id, same_record
from .clients.salesforce import RECORD_ID, SalesforceClient, soql_quote
from .keeper import TokenKeeper
from .phone import parse_phone
from .runtime.errors import BadGateway, BadRequest, NotFound
from .runtime.timing import ServerTiming

LEAD_PREFIX = "00Q"  # the key prefix (first three characters) of a Lead id
# Twilio SIDs: two letters naming the resource and 32 hex digits (CA a call, WT a TaskRouter task).
_CALL_SID = re.compile(r"CA[0-9a-f]{32}")
_TASK_SID = re.compile(r"WT[0-9a-f]{32}")
# Field lengths from the Task object reference; longer input is refused here, naming the field.
MAX_CHARS = {"subject": 255, "disposition": 255, "notes": 32_000}
MAX_DURATION_SECONDS = 7 * 24 * 3600
DIRECTIONS = {"inbound": "Inbound", "outbound": "Outbound", "outbound-api": "Outbound",
              "outbound-dial": "Outbound"}  # the last two are Twilio's Call.direction values
LOCK_STRIPES = 64
# A Salesforce User id: key prefix 005, 15 or 18 characters.
_USER_ID = re.compile(r"005[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?")


@dataclass(frozen=True)
class CallEntry:
    """One validated log-call request."""

    record_id: str            # the Contact or Lead (003... / 00Q...)
    call_object: str          # the idempotency key: the call SID, else the task SID
    call_type: str            # Inbound | Outbound
    duration: int | None
    disposition: str | None
    notes: str | None
    subject: str | None
    caller: str | None        # E.164, for the default subject

    @property
    def on_lead(self) -> bool:
        return self.record_id.startswith(LEAD_PREFIX)


def _text(event: dict, name: str) -> str | None:
    value = event.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be text", code=f"invalid_{name}")
    if len(value) > MAX_CHARS[name]:
        raise BadRequest(f"{name} is {len(value)} characters; Salesforce allows at most "
                         f"{MAX_CHARS[name]}", code=f"invalid_{name}")
    return value


def _duration(value: object) -> int | None:
    if value is None or value == "":
        return None
    # ASCII digits only: "²".isdigit() is true, but int("²") fails.
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DURATION_SECONDS:
        raise BadRequest(f"duration must be whole seconds from 0 to {MAX_DURATION_SECONDS}",
                         code="invalid_duration")
    return value


def _sid(event: dict, name: str, pattern: re.Pattern, meaning: str) -> str | None:
    value = event.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise BadRequest(f"{name} must be {meaning}", code=f"invalid_{name}")
    return value


def parse_call_entry(event: dict) -> CallEntry:
    """Check a log-call body; every problem is a 400 naming the field, before any Salesforce call."""
    record_id = parse_record_id(event.get("contact_id"))
    call_sid = _sid(event, "call_sid", _CALL_SID, "a Twilio call SID (CA and 32 hex digits)")
    task_sid = _sid(event, "task_sid", _TASK_SID, "a TaskRouter task SID (WT and 32 hex digits)")
    if call_sid is None and task_sid is None:
        raise BadRequest("call_sid or task_sid is required: it keeps a second log of the same "
                         "call from making a second Task", code="missing_call_sid")
    direction = event.get("direction") or "inbound"
    if not isinstance(direction, str) or direction.lower() not in DIRECTIONS:
        raise BadRequest("direction must be inbound or outbound", code="invalid_direction")
    phone = event.get("phone")
    caller = parse_phone(phone, event.get("country") or "US").e164 if phone else None
    return CallEntry(record_id, call_sid or task_sid, DIRECTIONS[direction.lower()],
                     _duration(event.get("duration")), _text(event, "disposition"),
                     _text(event, "notes"), _text(event, "subject"), caller)


class CallLogger:
    """Writes call logs as Tasks with the agent's token, through the keeper (refresh once, relink)."""

    def __init__(self, salesforce: SalesforceClient, keeper: TokenKeeper,
                 user_of: Callable[[str, ServerTiming], dict]) -> None:
        self.salesforce = salesforce
        self.keeper = keeper
        self.user_of = user_of  # the agent's Salesforce user (userinfo, cached): Lookup.user
        # Two Saves of one agent's call at once must not both miss the query and both create: a
        # lock per agent and call, from a fixed set so the number of locks stays bounded.
        self._stripes = [threading.Lock() for _ in range(LOCK_STRIPES)]

    def log(self, identity: str, entry: CallEntry, timing: ServerTiming) -> dict:
        """Create the agent's Task for the call, or update the one they logged for it before;
        {task_id, task_url, created}."""
        owner = self._owner(identity, timing)
        with self._stripes[zlib.crc32(f"{owner} {entry.call_object}".encode()) % LOCK_STRIPES]:
            existing = self._logged_task(identity, owner, entry, timing)
            if existing is None:
                fields = {**self._who(identity, entry, timing), **_new_task_fields(entry)}
                task_id = self.keeper.call(
                    identity, lambda token: self.salesforce.create(token, "Task", fields),
                    timing, "sfdc-write", "Salesforce Task create")
            else:
                task_id = existing["Id"]
                fields = _changed_task_fields(entry)
                if not same_record(existing.get("WhoId"), entry.record_id):
                    fields.update(self._who(identity, entry, timing))
                self.keeper.call(
                    identity, lambda token: self.salesforce.update(token, "Task", task_id, fields),
                    timing, "sfdc-write", "Salesforce Task update")
        return {"task_id": task_id, "task_url": self.salesforce.record_url("Task", task_id),
                "created": existing is None}

    def _owner(self, identity: str, timing: ServerTiming) -> str:
        """The agent's Salesforce user id, which owns the Tasks they create (userinfo's user_id)."""
        user_id = self.user_of(identity, timing).get("sfdc_user_id")
        if not isinstance(user_id, str) or not _USER_ID.fullmatch(user_id):
            raise BadGateway("Salesforce's userinfo named no user id", code="salesforce_error")
        return user_id

    def _logged_task(self, identity: str, owner: str, entry: CallEntry,
                     timing: ServerTiming) -> dict | None:
        # Only the agent's own Task: a transferred call has the same CallObject on a colleague's.
        soql = (f"SELECT Id, WhoId FROM Task WHERE CallObject = {soql_quote(entry.call_object)} "
                f"AND OwnerId = {soql_quote(owner)} ORDER BY CreatedDate ASC LIMIT 1")
        tasks = self.keeper.call(identity, lambda token: self.salesforce.query(token, soql),
                                 timing, "sfdc-query", "Salesforce SOQL: Task already logged?")
        if not tasks:
            return None
        if not isinstance(tasks[0].get("Id"), str) or not RECORD_ID.fullmatch(tasks[0]["Id"]):
            raise BadGateway("Salesforce answered a Task without a usable record id",
                             code="salesforce_error")
        return tasks[0]

    def _who(self, identity: str, entry: CallEntry, timing: ServerTiming) -> dict:
        """WhoId, and WhatId = the Contact's Account (a Task on a Lead may relate to nothing else)."""
        if entry.on_lead:
            return {"WhoId": entry.record_id, "WhatId": None}
        soql = f"SELECT Id, AccountId FROM Contact WHERE Id = {soql_quote(entry.record_id)}"
        rows = self.keeper.call(identity, lambda token: self.salesforce.query(token, soql),
                                timing, "sfdc-query", "Salesforce SOQL: the Contact's Account")
        if not rows:
            raise NotFound(f"No Contact {entry.record_id} that this agent can see in Salesforce",
                           code="salesforce_record_not_found")
        return {"WhoId": rows[0].get("Id") or entry.record_id, "WhatId": rows[0].get("AccountId")}


def _new_task_fields(entry: CallEntry) -> dict:
    party = f" {'from' if entry.call_type == 'Inbound' else 'to'} {entry.caller}" if entry.caller else ""
    fields = {"Subject": entry.subject or f"{entry.call_type} call{party}", "TaskSubtype": "Call",
              "Type": "Call", "Status": "Completed",
              "ActivityDate": datetime.date.today().isoformat(), "CallObject": entry.call_object}
    fields.update(_changed_task_fields(entry))
    return fields


def _changed_task_fields(entry: CallEntry) -> dict:
    """What a later log of the same call may change; fields it leaves out stay as they were."""
    fields: dict[str, object] = {"CallType": entry.call_type, "Status": "Completed"}
    optional = {"CallDurationInSeconds": entry.duration, "CallDisposition": entry.disposition,
                "Description": entry.notes, "Subject": entry.subject}
    fields.update({name: value for name, value in optional.items() if value is not None})
    return fields
