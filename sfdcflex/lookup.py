"""Find the caller's Contact and Account in Salesforce, and who the agent is there, with a cache.

A lookup is one SOSL search over phone fields (Salesforce matches phone numbers by digits);
the search index lags new records by minutes, so when it finds nothing, one SOQL query on
Phone and MobilePhone with the usual written forms of the number follows.
"""
from __future__ import annotations

from .cache import MISSING, LRUCache
from .runtime.errors import NotFound
from .keeper import TokenKeeper
from .phone import PhoneNumber, phone_matches, written_variants
from .clients.salesforce import SalesforceClient, soql_quote, sosl_escape
from .runtime.timing import ServerTiming

FIELDS = ("Id, Name, Title, Phone, MobilePhone, Account.Name, Account.Type, Account.AccountNumber, "
          "Account.SLA__c, Account.CustomerPriority__c")
ORDER = "ORDER BY LastModifiedDate DESC LIMIT 10"


class NoMatch(NotFound):
    code = "no_match"


def sosl_for(number: PhoneNumber) -> str:
    term = sosl_escape(number.national)
    return f"FIND {{{term}}} IN PHONE FIELDS RETURNING Contact({FIELDS} {ORDER})"


def soql_for(number: PhoneNumber) -> str:
    values = ", ".join(soql_quote(v) for v in written_variants(number))
    return f"SELECT {FIELDS} FROM Contact WHERE Phone IN ({values}) OR MobilePhone IN ({values}) {ORDER}"


def contact_card(record: dict, matches: int, instance_url: str) -> dict:
    """The original plugin's fields, plus the record id and how many contacts matched."""
    account = record.get("Account") or {}
    return {
        "cust_id": record.get("Id"),
        "cust_name": record.get("Name"),
        "cust_record_url": f"{instance_url}/lightning/r/Contact/{record.get('Id')}/view",
        "cust_title": record.get("Title"),
        "cust_acct_name": account.get("Name"),
        "cust_acct_type": account.get("Type"),
        "cust_acct_num": account.get("AccountNumber"),
        "cust_acct_sla": account.get("SLA__c"),
        "cust_acct_priority": account.get("CustomerPriority__c"),
        "matches": matches,
    }


class Lookup:
    """Contact and user lookups for an agent; answers are cached per agent, never shared."""

    def __init__(self, salesforce: SalesforceClient, keeper: TokenKeeper, cache: LRUCache, *,
                 ttl: float) -> None:
        self.salesforce = salesforce
        self.keeper = keeper
        self.cache = cache
        self.ttl = ttl
        self.no_match_ttl = min(ttl / 5, 60.0)  # a new contact should show up soon

    def contact(self, identity: str, number: PhoneNumber, timing: ServerTiming) -> dict:
        """The most recently modified Contact whose Phone or MobilePhone is this number."""
        # Keyed by the link's revision too: a card read under a link dies with that link.
        key = ("contact", number.e164, self.keeper.link_revision(identity, timing))
        card = self.cache.get(identity, key)
        if card is MISSING:
            timing.mark("cache", "miss")
            card = self._contact_from_salesforce(identity, number, timing)
            self.cache.put(identity, key, card, self.ttl if card else self.no_match_ttl)
        else:
            timing.mark("cache", "hit")
        if not card:
            raise NoMatch(f"No contact in Salesforce has the phone number {number.e164}")
        return card

    def _contact_from_salesforce(self, identity: str, number: PhoneNumber,
                                 timing: ServerTiming) -> dict | None:
        records = self.keeper.call(identity, lambda token: self.salesforce.search(token, sosl_for(number)),
                                   timing, "sfdc-search", "Salesforce SOSL search")
        found = [r for r in records if _confirmed(r, number)]
        if not found:
            records = self.keeper.call(identity, lambda token: self.salesforce.query(token, soql_for(number)),
                                       timing, "sfdc-query", "Salesforce SOQL query (search index lag)")
            found = [r for r in records if _confirmed(r, number)]
        return contact_card(found[0], len(found), self.salesforce.instance_url) if found else None

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


def _confirmed(record: dict, number: PhoneNumber) -> bool:
    """SOSL phone search is fuzzy; keep a hit only when its digits really end in this number."""
    return phone_matches(record.get("Phone"), number) or phone_matches(record.get("MobilePhone"), number)
