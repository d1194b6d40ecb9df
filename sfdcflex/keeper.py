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

from .audit import LinkAudit
from .clients.errors import InvalidGrant, SalesforceError, SessionExpired, UpstreamError
from .clients.salesforce import SalesforceClient
from .errors import NotLinked, answer_for
from .runtime.app import loggable
from .runtime.errors import BadGateway, HTTPError
from .store import RevisionConflict, StoredTokens, TokenStore
from .runtime.timing import ServerTiming

log = logging.getLogger("sfdcflex")
T = TypeVar("T")

NOT_LINKED = "Salesforce is not connected for this agent: connect Salesforce to see caller records"


class TokenKeeper:
    """Gives callers a working access token for an agent, refreshing it when Salesforce says so."""

    def __init__(self, store: TokenStore, salesforce: SalesforceClient, audit: LinkAudit | None = None) -> None:
        self.store = store
        self.salesforce = salesforce
        self.audit = audit or LinkAudit()
        self._held: dict[str, StoredTokens] = {}
        self._unsaved: dict[str, StoredTokens] = {}  # refreshed, but the store was down
        # The request (its ServerTiming) that last confirmed an agent's held tokens with the
        # store: a request asks the store once, however many Salesforce calls it makes.
        self._confirmed_in: dict[str, ServerTiming] = {}
        self._locks: dict[str, threading.RLock] = {}  # re-entrant: a refresh saves under it
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

    def link_revision(self, identity: str, timing: ServerTiming) -> str | None:
        """The store's revision of the agent's current link (NotLinked when there is none).

        It changes whenever the link is made, refreshed, replaced or dropped, here or on another
        instance, so answers cached under it die with the link they were read with.
        """
        return self._tokens(identity, timing).revision

    def link(self, identity: str, access_token: str, refresh_token: str, *, sfdc_user: str = "") -> None:
        """Save a new link; the earlier one (if any) is replaced only now, after every check passed,
        and its refresh token revoked at Salesforce: a replaced grant must not stay alive."""
        with self._lock_for(identity):
            replaced = self._unsaved.pop(identity, None) or self.store.get(identity)
            self._held[identity] = self.store.put(identity, access_token, refresh_token)
        self.audit.record("link" if replaced is None else "relink", identity, sfdc_user)
        if replaced is not None and replaced.refresh_token != refresh_token:
            try:
                self.salesforce.revoke(replaced.refresh_token)
            except SalesforceError as error:   # logged by the code an agent would be answered with
                log.warning("link %s: revoking the replaced Salesforce grant failed (%s)",
                            loggable(identity), answer_for(error).code)

    def unlink(self, identity: str) -> bool:
        """Revoke at Salesforce (best effort), then forget the tokens everywhere.

        Both the stored grant and the one held here are revoked when they differ: the agent may
        have linked again on another instance (the store holds that newer grant, which deleting the
        link must not leave alive at Salesforce), or the store may have refused the refreshed pair
        held here (then that is the live one)."""
        with self._lock_for(identity):
            self._unsaved.pop(identity, None)
            held = self._held.pop(identity, None)
            stored = self.store.get(identity)
            grants = dict.fromkeys(tokens.refresh_token for tokens in (held, stored) if tokens is not None)
            if not grants:
                return False
            for refresh_token in grants:
                try:
                    self.salesforce.revoke(refresh_token)
                except SalesforceError as error:
                    log.warning("unlink %s: Salesforce revoke failed (%s); deleting the link anyway",
                                loggable(identity), answer_for(error).code)
            self.store.delete(identity)
            self.audit.record("unlink", identity)
            return True

    def _tokens(self, identity: str, timing: ServerTiming) -> StoredTokens:
        if identity in self._unsaved:
            self._save_unsaved(identity, timing)
        tokens = self._held.get(identity)
        # Held tokens stand while the store says cheaply that nobody replaced or dropped the link
        # (or while it is down and holds older tokens than ours: then they are the newest).
        if tokens is not None and (identity in self._unsaved or self._confirmed_in.get(identity) is timing
                                   or self.store.is_current(identity, tokens.revision)):
            timing.mark("store", "tokens in memory")
            self._confirmed_in[identity] = timing
            return tokens
        with timing.span("store", "token store read"):
            tokens = self.store.get(identity)
        if tokens is None:
            self._held.pop(identity, None)
            self._confirmed_in.pop(identity, None)
            raise NotLinked(NOT_LINKED)
        self._held[identity] = tokens
        self._confirmed_in[identity] = timing
        return tokens

    def _refresh(self, identity: str, stale: StoredTokens, timing: ServerTiming) -> StoredTokens:
        with self._lock_for(identity), self.store.refresh_guard(identity):
            held = self._held.get(identity)
            if held is not None and held.access_token != stale.access_token:
                timing.mark("sfdc-refresh", "refreshed by a concurrent request")
                return held
            if identity in self._unsaved:  # the newest refresh token exists only in memory
                return self._refresh_from(identity, self._unsaved[identity], timing)
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
            with timing.span("sfdc-refresh", "Salesforce token refresh"), self.audit.refreshing():
                answer = self.salesforce.refresh(stored.refresh_token)
        except InvalidGrant as dead:
            # The refresh token is dead (revoked, expired or reused): drop this link for good,
            # but only this one: the agent may have linked again meanwhile, elsewhere.
            self._held.pop(identity, None)
            self._unsaved.pop(identity, None)
            try:
                self.store.delete(identity, if_revision=stored.revision)
            except RevisionConflict:
                newer = self.store.get(identity)
                if newer is not None:
                    self._held[identity] = newer
                    return newer
            self.audit.record("dropped", identity)
            raise NotLinked(dead.message) from None
        refreshed = StoredTokens(answer["access_token"], answer.get("refresh_token") or stored.refresh_token,
                                 stored.revision)
        self._held[identity] = refreshed
        self._unsaved[identity] = refreshed  # until the store has it: the old refresh token is spent
        self._save_unsaved(identity, timing)
        return self._held[identity]

    def _save_unsaved(self, identity: str, timing: ServerTiming) -> None:
        """Save refreshed tokens; if the store is down, keep them in memory and try again next time."""
        with self._lock_for(identity):
            pending = self._unsaved.get(identity)
            if pending is None:
                return
            try:
                with timing.span("store", "token store write"):
                    saved = self.store.put(identity, pending.access_token, pending.refresh_token,
                                           if_revision=pending.revision)
            except RevisionConflict:
                # The agent linked again elsewhere meanwhile: that newer link wins.
                saved = self.store.get(identity)
                if saved is None:
                    self._unsaved.pop(identity)
                    self._held.pop(identity, None)
                    raise NotLinked(NOT_LINKED) from None
            except (HTTPError, UpstreamError, OSError) as error:
                reason = error if isinstance(error, OSError) else answer_for(error).code
                log.warning("could not save refreshed Salesforce tokens for %s (%s); holding them in "
                            "memory and retrying on the next request", loggable(identity), reason)
                return
            self._unsaved.pop(identity)
            self._held[identity] = saved

    def _lock_for(self, identity: str) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(identity, threading.RLock())
