"""Link an agent's own Salesforce user to their Flex identity (OAuth 2.0 web-server flow + PKCE).

1. `authorize_url`: a signed, expiring `state` carries the Flex identity; the PKCE verifier is
   derived from the state's nonce and a server secret, so any instance can finish the flow.
2. Salesforce shows its login page and redirects back with `?code&state`.
3. `complete`: verify the state, exchange the code (with the verifier), ask Salesforce who the
   user is, and link only when the org is ours and the username is the Flex identity.

With ORIGINAL_PLUGIN_LOGIN the original plugin's own flow works too: its popup opens `auth`
with no Flex token, Salesforce sends the code to FLEX_INSTANCE_URL/salesforce-oauth, and the
plugin relays it with its Flex token; `complete` then makes the same org and identity checks.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from .clients.errors import SalesforceError
from .clients.salesforce import SalesforceClient
from .config import same_org
from .errors import ANSWERABLE, answer_for
from .keeper import TokenKeeper
from .oauth_state import LinkState, StateSigner, code_challenge
from .runtime.app import loggable
from .runtime.errors import BadGateway, BadRequest, Forbidden, HTTPError
from .runtime.timing import ServerTiming

log = logging.getLogger("sfdcflex")
MAX_CODE_CHARS = 512


class Declined(Forbidden):
    """Salesforce sent the agent back with an OAuth error instead of a code (RFC 6749 §4.1.2.1)."""

    code = "access_denied"

    @classmethod
    def from_redirect(cls, error: str, description: str) -> Declined:
        if error == "access_denied":  # the agent pressed Deny: say so in their words, not the spec's
            return cls("You pressed Deny on Salesforce's page, so Salesforce is not connected; "
                       "press Connect again and choose Allow to link it")
        # Anything else (an app blocked by the org, a bad scope) is for an administrator to read.
        return cls(f"Salesforce refused the sign-in ({error[:60]}: {description[:100]}), "
                   "so nothing was linked; ask your Salesforce administrator")


def same_identity(flex_identity: str, username: str) -> bool:
    """Equal but for ASCII letter case. Unicode case mapping would match look-alikes: the
    Kelvin sign (U+212A) lowers to "k", so "\u212aate@..." would pass for "kate@...". So a
    name with any non-ASCII character must match exactly."""
    if flex_identity.isascii() and username.isascii():
        return flex_identity.lower() == username.lower()
    return flex_identity == username


@dataclass(frozen=True)
class LinkResult:
    identity: str
    sfdc_username: str
    display_name: str
    origin: str | None


class Linker:
    """Starts and completes the OAuth link for one Flex identity at a time."""

    def __init__(self, salesforce: SalesforceClient, keeper: TokenKeeper, signer: StateSigner, *,
                 org_id: str, callback_url: str, relay_redirect_uri: str,
                 allowed_origins: tuple[str, ...], original_login: bool = False) -> None:
        self.salesforce = salesforce
        self.keeper = keeper
        self.signer = signer
        self.org_id = org_id
        self.callback_url = callback_url
        self.relay_redirect_uri = relay_redirect_uri
        self.allowed_origins = tuple(o.rstrip("/") for o in allowed_origins)
        self.original_login = original_login

    def authorize_url(self, identity: str, origin: object = None) -> str:
        """Salesforce's consent page for this agent; `origin` (the panel's) must be an allowed one."""
        self.keeper.store.check_identity(identity)   # refused now, not after the agent signs in
        state = self.signer.sign(identity, self._allowed(origin))
        verifier = self.signer.code_verifier(self.signer.verify(state))
        return self.salesforce.authorize_url(self.callback_url, state, code_challenge(verifier))

    def original_authorize_url(self) -> str:
        """Salesforce's consent page as the original plugin's `auth` sent the popup there.

        The redirect URI is Flex's own /salesforce-oauth, where the plugin reads `code` from the
        popup's address; there is no state and no PKCE, because the plugin relays the bare code.
        What still binds the code to the agent is `complete`'s check that the Salesforce user
        is the one named by the relaying agent's Flex token.
        """
        return self.salesforce.authorize_url(self.relay_redirect_uri)

    def origin_of(self, state: object, default: str) -> str | None:
        """Where the popup may report: the allowed panel origin a valid state carries, `default`
        (FLEX_INSTANCE_URL's) when it carries none. None when the state is not valid or names an
        origin not allowed: then no panel of ours started this sign-in, and none is told."""
        try:
            origin = self.signer.verify(state).origin
        except HTTPError:
            return None
        return default if origin is None else self._allowed(origin)

    def _allowed(self, origin: object) -> str | None:
        """The origin without a trailing slash when it is an allowed one, else None."""
        if isinstance(origin, str) and origin.rstrip("/") in self.allowed_origins:
            return origin.rstrip("/")
        return None

    def complete(self, code: object, state: object, timing: ServerTiming, *,
                 identity: str | None = None) -> LinkResult:
        """Finish a link from the redirect (state names the agent) or a relayed code (Flex token does)."""
        if not isinstance(code, str) or not code or len(code) > MAX_CODE_CHARS:
            raise BadRequest("The authorization code is missing or malformed", code="invalid_code")
        if state is None and identity is not None and self.original_login:
            # The original plugin relays a code it got on FLEX_INSTANCE_URL/salesforce-oauth,
            # from an authorize URL it built itself: no state and no PKCE to check. Only with
            # ORIGINAL_PLUGIN_LOGIN: otherwise a code without a state is refused as one.
            verifier, redirect_uri, origin = None, self.relay_redirect_uri, None
        else:
            link_state = self._verified(state, identity)
            identity, origin = link_state.identity, link_state.origin
            verifier, redirect_uri = self.signer.code_verifier(link_state), self.callback_url
        try:
            self.keeper.store.check_identity(identity)
            with timing.span("sfdc-token", "Salesforce code exchange"):
                answer = self.salesforce.exchange_code(code, redirect_uri, verifier)
            with timing.span("sfdc-userinfo", "Salesforce userinfo"):
                user = self.salesforce.userinfo(answer["access_token"])
            self._check_user(identity, user, answer)
            self.keeper.link(identity, answer["access_token"], answer["refresh_token"],
                             sfdc_user=str(user["preferred_username"]))   # its audit line records the link
        except ANSWERABLE as failure:
            _log_refusal(identity, failure)
            raise
        return LinkResult(identity, str(user["preferred_username"]),
                          str(user.get("name") or user["preferred_username"]), origin)

    def _verified(self, state: object, identity: str | None) -> LinkState:
        """The state's claims, if it is ours, unexpired, unused, for this agent and an allowed origin.

        A state is good for one callback: its nonce is claimed in the token store (shared by
        every instance), so a state seen again (a replayed redirect) is refused.
        """
        link_state = self.signer.verify(state)
        try:
            if identity is not None and not same_identity(identity, link_state.identity):
                raise Forbidden("This link was started by another Flex user", code="state_mismatch")
            if link_state.origin is not None and self._allowed(link_state.origin) is None:
                # Signed with our secret but naming an origin we do not allow (the settings changed
                # since /auth, or another instance's): the popup must not report to it.
                raise Forbidden("This sign-in was started from a page that is not allowed",
                                code="origin_not_allowed")
            if not self.keeper.store.claim_state(link_state.identity, link_state.nonce,
                                                 link_state.expires_at):
                raise Forbidden("This sign-in link was used already; start linking again",
                                code="state_used")
        except HTTPError as refusal:
            _log_refusal(link_state.identity, refusal)
            raise
        return link_state

    def _check_user(self, identity: str, user: dict, answer: dict) -> None:
        """Refuse (and revoke the new tokens) unless the Salesforce user is this agent in our org."""
        username, org = user.get("preferred_username"), user.get("organization_id")
        if not isinstance(username, str) or not isinstance(org, str):
            raise BadGateway("Salesforce's userinfo lacks preferred_username or organization_id")
        refusal = None
        if not same_org(org, self.org_id):
            refusal = Forbidden(f"The Salesforce user {username} belongs to another Salesforce org; "
                                "sign in to your company's org", code="wrong_org")
        elif not same_identity(identity, username):
            refusal = Forbidden(f"The Salesforce user {username} is not the Flex user {identity}; "
                                f"sign in to Salesforce as {identity} (if there is no such user, "
                                "ask your Salesforce administrator to create it)", code="identity_mismatch")
        if refusal is not None:
            self._revoke_quietly(answer["refresh_token"])
            raise refusal

    def _revoke_quietly(self, token: str) -> None:
        try:
            self.salesforce.revoke(token)
        except SalesforceError as error:
            log.warning("could not revoke refused tokens: %s", answer_for(error).code)


def _log_refusal(identity: str, failure: BaseException) -> None:
    """Name the agent whose sign-in was refused: the request log line names only the path, so
    without this a flood of refused callbacks could not be traced to the Flex login sending it."""
    log.warning("link refused for Flex user %s: %s", loggable(identity), answer_for(failure).code)
