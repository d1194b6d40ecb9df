"""Each agent's Salesforce tokens: read from the store once, kept in memory, refreshed single-flight.

Salesforce rotates refresh tokens: every refresh answers a new refresh token and presenting
an old one again revokes the whole chain. So a refresh happens only after a 401
INVALID_SESSION_ID, at most once per request, by one thread per agent while the others wait,
after re-reading the store (another instance may have refreshed already), and the new refresh
token is saved every time.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, TypeVar

from .errors import BadGateway, NotLinked
from .salesforce import InvalidGrant, SalesforceClient, SessionExpired
from .store import RevisionConflict, StoredTokens, TokenStore
from .timing import ServerTiming

log = logging.getLogger("sfdcflex")
T = TypeVar("T")

NOT_LINKED = "Salesforce is not connected for this agent: connect Salesforce to see caller records"


class TokenKeeper:
    """Gives callers a working access token for an agent, refreshing it when Salesforce says so."""

    def __init__(self, store: TokenStore, salesforce: SalesforceClient) -> None:
        self.store = store
        self.salesforce = salesforce
        self._held: dict[str, StoredTokens] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def call(self, identity: str, use: Callable[[str], T], timing: ServerTiming,
             hop: str, desc: str) -> T:
        """Run `use(access_token)` as one timed hop; on an expired session refresh once and retry."""
        tokens = self._tokens(identity, timing)
        try:
            with timing.span(hop, desc):
                return use(tokens.access_token)
        except SessionExpired:
            fresh = self._refresh(identity, tokens, timing)
        try:
            with timing.span(hop, desc + " (after refresh)"):
                return use(fresh.access_token)
        except SessionExpired:
            # Never loop: a token Salesforce just issued and refuses at once is its problem.
            raise BadGateway("Salesforce refused a freshly refreshed session; try again later",
                             code="salesforce_session_refused") from None

    def link(self, identity: str, access_token: str, refresh_token: str) -> None:
        """Save a new link; the earlier one (if any) is replaced only now, after every check passed."""
        with self._lock_for(identity):
            self._held[identity] = self.store.put(identity, access_token, refresh_token)

    def unlink(self, identity: str) -> bool:
        """Revoke at Salesforce (best effort), then forget the tokens everywhere."""
        with self._lock_for(identity):
            tokens = self._held.pop(identity, None) or self.store.get(identity)
            if tokens is None:
                return False
            try:
                self.salesforce.revoke(tokens.refresh_token)
            except BadGateway as error:
                log.warning("unlink %s: Salesforce revoke failed (%s); deleting the link anyway",
                            identity, error.code)
            self.store.delete(identity)
            return True

    def _tokens(self, identity: str, timing: ServerTiming) -> StoredTokens:
        tokens = self._held.get(identity)
        if tokens is not None:
            timing.mark("store", "tokens in memory")
            return tokens
        with timing.span("store", "token store read"):
            tokens = self.store.get(identity)
        if tokens is None:
            raise NotLinked(NOT_LINKED)
        self._held[identity] = tokens
        return tokens

    def _refresh(self, identity: str, stale: StoredTokens, timing: ServerTiming) -> StoredTokens:
        with self._lock_for(identity):
            held = self._held.get(identity)
            if held is not None and held.access_token != stale.access_token:
                timing.mark("sfdc-refresh", "refreshed by a concurrent request")
                return held
            with timing.span("store", "token store re-read"):
                stored = self.store.get(identity)
            if stored is None:
                self._held.pop(identity, None)
                raise NotLinked(NOT_LINKED)
            if stored.access_token != stale.access_token:  # another instance refreshed first
                self._held[identity] = stored
                return stored
            return self._refresh_from(identity, stored, timing)

    def _refresh_from(self, identity: str, stored: StoredTokens, timing: ServerTiming) -> StoredTokens:
        try:
            with timing.span("sfdc-refresh", "Salesforce token refresh"):
                answer = self.salesforce.refresh(stored.refresh_token)
        except InvalidGrant:
            # The refresh token is dead (revoked, expired or reused): drop the link for good.
            self._held.pop(identity, None)
            self.store.delete(identity)
            raise
        refresh_token = answer.get("refresh_token") or stored.refresh_token
        try:
            fresh = self.store.put(identity, answer["access_token"], refresh_token,
                                   if_revision=stored.revision)
        except RevisionConflict:
            # Another instance wrote in between; its tokens are as new as ours.
            fresh = self.store.get(identity)
            if fresh is None:
                raise NotLinked(NOT_LINKED) from None
        self._held[identity] = fresh
        return fresh

    def _lock_for(self, identity: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(identity, threading.Lock())
