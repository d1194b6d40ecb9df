"""Tokens in Twilio Sync documents, one per agent named by identity, in the original plugin's shape.

Sync's path `Documents/{Sid or UniqueName}` takes either a SID or a unique name, and a unique
name may be any 1-256 characters not shaped like a SID (Twilio error 54302). So identities Sync
cannot hold are refused before any call, every answer's `unique_name` is checked, and what the
store keeps besides tokens (refresh leases, used OAuth states) lives in Maps, where no identity
can name it.
"""
from __future__ import annotations

import hashlib
import math
import re
import secrets
import time
from contextlib import contextmanager, suppress
from typing import Iterator

from .clients.errors import DocumentExists, DocumentNotFound, MapItemExists, RevisionMismatch, SyncError
from .clients.sync import SyncClient
from .runtime.errors import Forbidden
from .store import RefreshBusy, RevisionConflict, StoreDamaged, StoredTokens

# Twilio error 54302: a unique name is 1-256 characters and does not match the SID pattern
# [A-Z]{2}[a-f0-9]{32}; the path Documents/{Sid or UniqueName} takes either, so an identity
# shaped like a SID would name someone else's document. Refused in either letter case.
MAX_UNIQUE_NAME = 256
_SID_SHAPED = re.compile(r"[A-Za-z]{2}[0-9A-Fa-f]{32}")
# "." and ".." in the path Documents/{name} are dot-segments (RFC 3986 section 5.2.4): a server or
# proxy removes them, so the request would name the Documents list or the Service itself.
_DOT_SEGMENTS = (".", "..")
# Leases and used states live in Maps, never in documents: no identity can name them.
LEASE_MAP = "sfdcflex-refresh-leases"
USED_STATES_MAP = "sfdcflex-used-states"
# Another instance may drop or replace a link. By default (0) held tokens are confirmed by one
# read of the agent's document per request, so a link dropped anywhere is gone everywhere at the
# next request, as with the JSON store. SYNC_LINK_RECHECK trusts a read this many seconds instead:
# a cached answer then costs no Sync call, and a dead link's cards may be served that long.
RECHECK_SECONDS = 0.0


class IdentityNotStorable(Forbidden):
    """The Flex identity cannot be a Twilio Sync unique name, so it cannot hold a link."""

    code = "identity_not_storable"


class SyncTokenStore:
    """Tokens in Twilio Sync documents named by identity, in the original plugin's exact data shape."""

    def __init__(self, client: SyncClient, *, lease_ttl: int = 30, lease_wait: float = 10.0,
                 recheck: float = RECHECK_SECONDS) -> None:
        self._client = client
        self._lease_ttl = lease_ttl
        self._lease_wait = lease_wait
        self._recheck = recheck
        self._seen: dict[str, tuple[float, str | None]] = {}   # identity -> (when, revision) read

    def is_current(self, identity: str, revision: str | None) -> bool:
        """Whether this revision was read or written less than `recheck` seconds ago."""
        seen = self._seen.get(identity)
        return seen is not None and seen[1] == revision and time.monotonic() - seen[0] < self._recheck

    @staticmethod
    def check_identity(identity: str) -> None:
        """Refuse (403) an identity Sync cannot hold as a unique name, before any Sync call."""
        if not 1 <= len(identity) <= MAX_UNIQUE_NAME or _SID_SHAPED.fullmatch(identity) \
                or identity in _DOT_SEGMENTS:
            raise IdentityNotStorable(
                "This Flex identity cannot name a Twilio Sync document (1-256 characters, not "
                "shaped like a Sync SID, not . or ..), so Salesforce cannot be linked to it")

    def get(self, identity: str) -> StoredTokens | None:
        """The agent's tokens from their document, or None when there is none."""
        self.check_identity(identity)
        document = self._client.fetch_document(identity)
        if document is None:
            self._seen.pop(identity, None)
            return None
        return self._seen_now(_tokens_from(document, identity), identity)

    def put(self, identity: str, access_token: str, refresh_token: str, *,
            if_revision: str | None = None) -> StoredTokens:
        """Create or update the agent's document; with if_revision, Sync checks it (If-Match)."""
        self.check_identity(identity)
        data = {"access_token": access_token, "refresh_token": refresh_token}
        if if_revision is not None:
            try:
                document = self._client.update_document(identity, data, if_match=if_revision)
            except (RevisionMismatch, DocumentNotFound):
                raise RevisionConflict("The agent's Salesforce tokens changed meanwhile; "
                                       "read them again") from None
            return self._seen_now(_tokens_from(document, identity), identity)
        try:
            document = self._client.create_document(identity, data)
        except DocumentExists:
            # 409 / 54301: the agent linked before (perhaps through the original plugin): overwrite.
            document = self._client.update_document(identity, data)
        return self._seen_now(_tokens_from(document, identity), identity)

    def _seen_now(self, tokens: StoredTokens, identity: str) -> StoredTokens:
        self._seen[identity] = (time.monotonic(), tokens.revision)
        return tokens

    @contextmanager
    def refresh_guard(self, identity: str) -> Iterator[None]:
        """A lease item, so instances sharing Sync refresh an agent one at a time.

        Salesforce rotates refresh tokens, so two instances must never present the same one.
        Creating a Map item whose key exists fails atomically in Sync (409), and its ItemTtl
        makes Sync delete it should the holder die. Leases live in a Map, keyed by a hash of
        the identity, so no identity can name (and so block) another agent's lease.
        """
        self.check_identity(identity)
        lease = hashlib.sha256(identity.encode("utf-8")).hexdigest()
        deadline = time.monotonic() + self._lease_wait
        while True:
            try:
                self._client.create_map_item(LEASE_MAP, lease, {"holder": secrets.token_hex(8)},
                                             self._lease_ttl)
                break
            except MapItemExists:
                if time.monotonic() > deadline:
                    # The holder needs one Salesforce round trip; a second is plenty to wait.
                    raise RefreshBusy("Another instance is refreshing this agent's Salesforce session; "
                                      "try again in a moment", headers={"Retry-After": "1"}) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            with suppress(SyncError):   # the lease's ItemTtl ends it anyway
                self._client.delete_map_item(LEASE_MAP, lease)

    def claim_state(self, identity: str, nonce: str, expires_at: float) -> bool:
        """True the first time a state's nonce is claimed; remembered in Sync until it expires,
        so a state used on one instance is refused on every other. A Map item each, with no
        shared cap that one agent's claims could fill (the JSON store's, used_states.py)."""
        ttl = max(1, math.ceil(expires_at - time.time()))
        try:
            self._client.create_map_item(USED_STATES_MAP, nonce, {}, ttl)
        except MapItemExists:
            return False
        return True

    def delete(self, identity: str, *, if_revision: str | None = None) -> bool:
        """Delete the agent's document; False when there was none; with if_revision, only that one."""
        self.check_identity(identity)
        self._seen.pop(identity, None)
        try:
            return self._client.delete_document(identity, if_match=if_revision)
        except RevisionMismatch:
            raise RevisionConflict("The agent's Salesforce tokens changed meanwhile; read them again") from None


def _tokens_from(document: dict, identity: str) -> StoredTokens:
    if document.get("unique_name") != identity:
        # Sync resolved the name to another document (a SID, say): never hand out its tokens.
        raise SyncError("Twilio Sync answered another document than the agent's own")
    data = document.get("data", {})
    access_token, refresh_token = data.get("access_token"), data.get("refresh_token")
    if not isinstance(access_token, str) or not isinstance(refresh_token, str):
        raise StoreDamaged("The agent's Twilio Sync document does not hold access_token and refresh_token")
    revision = document.get("revision")
    return StoredTokens(access_token, refresh_token, None if revision is None else str(revision))
