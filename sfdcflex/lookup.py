"""Find the caller's Contact (or Lead) and Account in Salesforce, and who the agent is there, with a cache.

A lookup is one SOSL search over phone (or email) fields returning Contacts and Leads at once
(Salesforce matches phone numbers by digits); the search index lags new records by minutes,
so when it finds nothing, one SOQL query on the Contact's own fields follows (Phone and
MobilePhone with the usual written forms of the number, or Email).
"""
from __future__ import annotations

from typing import Union

from .cache import MISSING, LRUCache
from .cards import MAX_CANDIDATES, NoMatch, choose, record_card, record_type
from .config import LOOKUP_OBJECTS
from .email_address import EmailAddress
from .keeper import TokenKeeper
from .phone import PhoneNumber, phone_matches, written_variants
from .clients.salesforce import SalesforceClient, soql_quote, sosl_escape
from .runtime.response import encode_json
from .runtime.timing import ServerTiming

__all__ = ["Lookup", "NoMatch", "soql_for", "sosl_for"]

Caller = Union[PhoneNumber, EmailAddress]
FIELDS = ("Id, Name, Title, Phone, MobilePhone, Email, Account.Name, Account.Type, "
          "Account.AccountNumber, Account.SLA__c, Account.CustomerPriority__c")
LEAD_FIELDS = "Id, Name, Title, Company, Phone, MobilePhone, Email"
ORDER = "ORDER BY LastModifiedDate DESC LIMIT 10"


def sosl_for(caller: Caller, objects: tuple[str, ...] = LOOKUP_OBJECTS) -> str:
    """One search for every object in `objects`: Contacts and Leads cost one call together."""
    if isinstance(caller, EmailAddress):
        term, scope = sosl_escape(caller.address), "EMAIL"
    else:
        term, scope = sosl_escape(caller.national), "PHONE"
    fields = {"Contact": FIELDS, "Lead": LEAD_FIELDS}
    returning = ", ".join(f"{name}({fields[name]} {ORDER})" for name in objects)
    return f"FIND {{{term}}} IN {scope} FIELDS RETURNING {returning}"


def soql_for(caller: Caller) -> str:
    """The Contact query for records the search index does not have yet."""
    if isinstance(caller, EmailAddress):
        return f"SELECT {FIELDS} FROM Contact WHERE Email = {soql_quote(caller.address)} {ORDER}"
    values = ", ".join(soql_quote(v) for v in written_variants(caller))
    return f"SELECT {FIELDS} FROM Contact WHERE Phone IN ({values}) OR MobilePhone IN ({values}) {ORDER}"


def _described(caller: Caller) -> str:
    if isinstance(caller, EmailAddress):
        return f"email address {caller.address}"
    return f"phone number {caller.e164}"


def _cache_key(caller: Caller) -> str:
    return caller.cache_key if isinstance(caller, EmailAddress) else caller.e164


class _Found:
    """What one lookup found, as cached: the cards (at most MAX_CANDIDATES), how many records
    matched, and each answer's JSON once it has been sent (by pick: at most one per card and
    the default), so that a cache hit sends the bytes encoded for the first one."""

    __slots__ = ("cards", "matches", "encoded")

    def __init__(self, cards: list[dict], matches: int) -> None:
        self.cards, self.matches = cards, matches
        self.encoded: dict[str | None, bytes] = {}


class Lookup:
    """Contact and user lookups for an agent; answers are cached per agent, never shared."""

    def __init__(self, salesforce: SalesforceClient, keeper: TokenKeeper, cache: LRUCache, *,
                 ttl: float, objects: tuple[str, ...] = LOOKUP_OBJECTS) -> None:
        self.salesforce = salesforce
        self.keeper = keeper
        self.cache = cache
        self.ttl = ttl
        self.objects = objects
        self.no_match_ttl = min(ttl / 5, 60.0)  # a new contact should show up soon

    def contact(self, identity: str, caller: Caller, timing: ServerTiming,
                pick: str | None = None) -> dict:
        """The card of the most recently modified match (a Contact before a Lead), or of `pick`.

        Every match is cached as one entry, so choosing another candidate costs no call.
        """
        found = self._found(identity, caller, timing)
        return choose(found.cards, pick, found.matches)

    def contact_json(self, identity: str, caller: Caller, timing: ServerTiming,
                     pick: str | None = None) -> bytes:
        """`contact`'s answer as JSON (the runtime's encoding), encoded once per cached lookup
        and pick: a cache hit sends the bytes of the first answer again."""
        found = self._found(identity, caller, timing)
        encoded = found.encoded.get(pick)
        if encoded is None:
            encoded = found.encoded[pick] = encode_json(choose(found.cards, pick, found.matches))
        return encoded

    def _found(self, identity: str, caller: Caller, timing: ServerTiming) -> _Found:
        # Keyed by the link's revision too: a card read under a link dies with that link.
        key = ("contact", _cache_key(caller), self.keeper.link_revision(identity, timing))
        found = self.cache.get(identity, key)
        if found is MISSING:
            timing.mark("cache", "miss")
            found = self._cards_from_salesforce(identity, caller, timing)
            self.cache.put(identity, key, found, self.ttl if found.cards else self.no_match_ttl)
        else:
            timing.mark("cache", "hit")
        if not found.cards:
            raise NoMatch(f"No contact in Salesforce has the {_described(caller)}")
        return found

    def _cards_from_salesforce(self, identity: str, caller: Caller, timing: ServerTiming) -> _Found:
        sosl = sosl_for(caller, self.objects)
        records = self.keeper.call(identity, lambda token: self.salesforce.search(token, sosl),
                                   timing, "sfdc-search", "Salesforce SOSL search")
        found = [r for r in records if _confirmed(r, caller)]
        if not found:
            soql = soql_for(caller)
            records = self.keeper.call(identity, lambda token: self.salesforce.query(token, soql),
                                       timing, "sfdc-query", "Salesforce SOQL query (search index lag)")
            found = [r for r in records if _confirmed(r, caller)]
        # SOSL answers each RETURNING object in turn, newest first: Contacts before Leads.
        rank = {name: index for index, name in enumerate(self.objects)}
        found.sort(key=lambda r: rank.get(record_type(r), 0))
        return _Found([record_card(r, self.salesforce.instance_url) for r in found[:MAX_CANDIDATES]], len(found))

    def user(self, identity: str, timing: ServerTiming) -> dict:
        """Who the agent is in Salesforce (OpenID Connect userinfo), cached like contacts."""
        key = ("user", self.keeper.link_revision(identity, timing))
        user = self.cache.get(identity, key)
        if user is MISSING:
            timing.mark("cache", "miss")
            info = self.keeper.call(identity, self.salesforce.userinfo, timing,
                                    "sfdc-userinfo", "Salesforce userinfo")
            user = {"sfdc_username": info.get("preferred_username"),
                    "display_name": info.get("name") or info.get("preferred_username"),
                    "email": info.get("email"), "sfdc_user_id": info.get("user_id"),
                    "sfdc_org_id": info.get("organization_id")}
            self.cache.put(identity, key, user, self.ttl)
        else:
            timing.mark("cache", "hit")
        return user

    def forget(self, identity: str) -> int:
        return self.cache.drop_owner(identity)


def _confirmed(record: dict, caller: Caller) -> bool:
    """SOSL is fuzzy; keep a hit only when its phone digits end in this number, or its email is this one."""
    if isinstance(caller, EmailAddress):
        return isinstance(record.get("Email"), str) and record["Email"].strip().lower() == caller.address
    return phone_matches(record.get("Phone"), caller) or phone_matches(record.get("MobilePhone"), caller)
