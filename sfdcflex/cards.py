"""The answer get-contact gives: a card for one Contact or Lead, and the other candidates.

A Contact's card keeps the original plugin's eight `cust_*` fields; a Lead (a prospect, no
Account yet) shows its Company instead. Record ids are checked here, for `contact_id` in
get-contact and log-call alike.
"""
from __future__ import annotations

import re

from .runtime.errors import BadGateway, BadRequest, NotFound

MAX_CANDIDATES = 10
# A Contact (key prefix 003) or Lead (00Q) id: 15 case-sensitive characters, or 18 with the
# three-character case checksum (letters A-Z and digits 0-5).
RECORD_ID = re.compile(r"(?:003|00Q)[A-Za-z0-9]{12}(?:[A-Z0-5]{3})?")


class NoMatch(NotFound):
    code = "no_match"


def parse_record_id(value: object) -> str:
    """A Contact or Lead id from a request; anything else is a 400 before any Salesforce call."""
    if not isinstance(value, str) or not RECORD_ID.fullmatch(value):
        raise BadRequest("contact_id must be the 15- or 18-character id of a Contact (003...) "
                         "or Lead (00Q...)", code="invalid_contact_id")
    return value


def same_record(a: object, b: str) -> bool:
    """Whether two ids name one record: an 18-character id is the 15-character one plus a checksum."""
    return isinstance(a, str) and len(a) >= 15 and a[:15] == b[:15]


def related(record: dict, name: str) -> dict:
    """A record's nested object (`attributes`, a relationship like `Account`): {} when null;
    anything else is an answer this server cannot use, 502 rather than a crash."""
    value = record.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadGateway(f"Salesforce answered a record whose {name} is not an object",
                         code="salesforce_error")
    return value


def record_type(record: dict) -> str | None:
    """The record's sObject name (attributes.type), when Salesforce gave one."""
    kind = related(record, "attributes").get("type")
    return kind if isinstance(kind, str) else None


def record_card(record: dict, instance_url: str) -> dict:
    """The card for a Contact or Lead as the REST API returned it (by its attributes.type)."""
    kind = record_type(record) or "Contact"
    url = f"{instance_url}/lightning/r/{kind}/{record.get('Id')}/view"
    if kind == "Lead":
        return {"cust_id": record.get("Id"), "cust_type": "Lead", "cust_name": record.get("Name"),
                "cust_record_url": url, "cust_title": record.get("Title"),
                "cust_company": record.get("Company")}
    account = related(record, "Account")
    return {
        "cust_id": record.get("Id"),
        "cust_type": "Contact",
        "cust_name": record.get("Name"),
        "cust_record_url": url,
        "cust_title": record.get("Title"),
        "cust_acct_name": account.get("Name"),
        "cust_acct_type": account.get("Type"),
        "cust_acct_num": account.get("AccountNumber"),
        "cust_acct_sla": account.get("SLA__c"),
        "cust_acct_priority": account.get("CustomerPriority__c"),
    }


def _candidate(card: dict) -> dict:
    return {"cust_id": card["cust_id"], "cust_type": card["cust_type"], "cust_name": card["cust_name"],
            "cust_title": card["cust_title"],
            "cust_acct_name": card.get("cust_acct_name") or card.get("cust_company"),
            "cust_record_url": card["cust_record_url"]}


def choose(cards: list[dict], pick: str | None, matches: int) -> dict:
    """The picked card (default: the first, which wins) plus `matches` and, when several, `candidates`."""
    card = cards[0]
    if pick is not None:
        card = next((c for c in cards if same_record(c["cust_id"], pick)), None)
        if card is None:
            raise NoMatch(f"contact_id {pick} is not one of the records that match this caller")
    answer = {**card, "matches": matches}
    if len(cards) > 1:
        answer["candidates"] = [_candidate(c) for c in cards[:MAX_CANDIDATES]]
    return answer
