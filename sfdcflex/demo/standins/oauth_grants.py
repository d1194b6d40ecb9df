"""Authorization codes, access tokens and rotating refresh tokens of the Salesforce stand-in.

One `Grant` is one user's authorization of the connected app: it holds that user's access
tokens and the single refresh token that is currently good. Salesforce's refresh token
rotation: every refresh returns a new refresh token and spends the old one; presenting a
spent one again is treated as theft and revokes the whole grant.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

# Salesforce authorization codes are good for 15 minutes and for one exchange.
CODE_TTL_SECONDS = 15 * 60
SCOPES_WITH_REFRESH = {"refresh_token", "offline_access"}


class OAuthError(Exception):
    """A token endpoint refusal: HTTP status plus Salesforce's `error`/`error_description`."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description


def invalid_grant(description: str) -> OAuthError:
    return OAuthError(400, "invalid_grant", description)


@dataclass
class AuthorizationCode:
    user_id: str
    client_id: str
    redirect_uri: str
    code_challenge: str | None
    scope: str
    expires_at: float
    used: bool = False


@dataclass
class Grant:
    user_id: str
    scope: str
    access_tokens: set[str] = field(default_factory=set)
    refresh_token: str | None = None
    spent_refresh_tokens: set[str] = field(default_factory=set)
    revoked: bool = False


def s256(verifier: str) -> str:
    """PKCE S256: base64url(SHA-256(verifier)) without padding (RFC 7636 section 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class GrantBook:
    """Every code, grant and token the stand-in has issued; safe to use from many threads."""

    def __init__(self, org_id: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.org_prefix = org_id[:15]
        self.code_ttl = CODE_TTL_SECONDS
        self.refresh_log: list[str] = []
        self._clock = clock
        self._codes: dict[str, AuthorizationCode] = {}
        self._by_access: dict[str, Grant] = {}
        self._by_refresh: dict[str, Grant] = {}
        self._lock = threading.Lock()

    def issue_code(self, user_id: str, client_id: str, redirect_uri: str,
                   code_challenge: str | None, scope: str) -> str:
        code = "aPrx" + secrets.token_urlsafe(48)
        with self._lock:
            self._codes[code] = AuthorizationCode(user_id, client_id, redirect_uri,
                                                  code_challenge, scope,
                                                  self._clock() + self.code_ttl)
        return code

    def redeem_code(self, code: str, client_id: str, redirect_uri: str,
                    verifier: str | None) -> tuple[Grant, str, str | None]:
        """Exchange an authorization code once; every mismatch is 'authentication failure'."""
        with self._lock:
            pending = self._codes.get(code)
            if pending is None or pending.used or self._clock() > pending.expires_at:
                raise invalid_grant("expired authorization code" if pending else
                                    "invalid authorization code")
            pending.used = True
        if pending.client_id != client_id or pending.redirect_uri != redirect_uri:
            raise invalid_grant("authentication failure")
        if pending.code_challenge is not None and (
                not verifier or not hmac.compare_digest(s256(verifier), pending.code_challenge)):
            raise invalid_grant("invalid code verifier")
        return self.open_grant(pending.user_id, pending.scope)

    def open_grant(self, user_id: str, scope: str) -> tuple[Grant, str, str | None]:
        """A new grant with a first access token and, when the scope allows, a refresh token."""
        grant = Grant(user_id, scope)
        with self._lock:
            access = self._new_access(grant)
            if SCOPES_WITH_REFRESH & set(scope.split()):
                grant.refresh_token = "5Aep861" + secrets.token_urlsafe(60)
                self._by_refresh[grant.refresh_token] = grant
        return grant, access, grant.refresh_token

    def rotate(self, refresh_token: str) -> tuple[Grant, str, str]:
        """Spend `refresh_token` for a new access token and a new refresh token."""
        with self._lock:
            self.refresh_log.append(refresh_token)
            grant = self._by_refresh.get(refresh_token)
            if grant is None or grant.revoked:
                raise invalid_grant("expired access/refresh token")
            if refresh_token in grant.spent_refresh_tokens:
                # Reuse of a rotated-out refresh token: Salesforce revokes the whole chain.
                self._revoke(grant)
                raise invalid_grant("expired access/refresh token")
            grant.spent_refresh_tokens.add(refresh_token)
            grant.refresh_token = "5Aep861" + secrets.token_urlsafe(60)
            self._by_refresh[grant.refresh_token] = grant
            return grant, self._new_access(grant), grant.refresh_token

    def revoke(self, token: str) -> bool:
        """Revoke per Salesforce: a refresh token takes its grant's access tokens with it,
        an access token only itself. False when the token is unknown or already dead."""
        with self._lock:
            grant = self._by_refresh.get(token)
            if grant is not None and not grant.revoked and token == grant.refresh_token:
                self._revoke(grant)
                return True
            grant = self._by_access.pop(token, None)
            if grant is None or grant.revoked:
                return False
            grant.access_tokens.discard(token)
            return True

    def live_grants(self, user_id: str) -> int:
        """How many of the user's grants still work: a test's way to see that a revoke happened."""
        with self._lock:
            grants = {id(g): g for g in (*self._by_refresh.values(), *self._by_access.values())}
            return sum(1 for g in grants.values() if g.user_id == user_id and not g.revoked)

    def user_for(self, access_token: str) -> str | None:
        """The user id behind a live access token, or None (expired, revoked, unknown)."""
        with self._lock:
            grant = self._by_access.get(access_token)
            if grant is None or grant.revoked or access_token not in grant.access_tokens:
                return None
            return grant.user_id

    def expire_access_tokens(self) -> None:
        """Every current access token stops working, as when the session times out."""
        with self._lock:
            for grant in self._by_access.values():
                grant.access_tokens.clear()
            self._by_access.clear()

    def _new_access(self, grant: Grant) -> str:
        access = f"{self.org_prefix}!AQ{secrets.token_urlsafe(72)}"
        grant.access_tokens.add(access)
        self._by_access[access] = grant
        return access

    def _revoke(self, grant: Grant) -> None:
        grant.revoked = True
        for access in grant.access_tokens:
            self._by_access.pop(access, None)
        grant.access_tokens.clear()
