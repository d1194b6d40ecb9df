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

from .config import same_org
from .runtime.errors import BadGateway, BadRequest, Forbidden, HTTPError
from .keeper import TokenKeeper
from .oauth_state import StateSigner, code_challenge
from .clients.salesforce import SalesforceClient
from .runtime.timing import ServerTiming

log = logging.getLogger("sfdcflex")
MAX_CODE_CHARS = 512


class Declined(Forbidden):
    """The agent pressed Deny on Salesforce's consent page."""

    code = "access_denied"

    def __init__(self, reason: str) -> None:
        super().__init__(f"You declined access in Salesforce ({reason[:100]}), so nothing was linked")


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
        origin = origin.rstrip("/") if isinstance(origin, str) and origin.rstrip("/") in self.allowed_origins else None
        state = self.signer.sign(identity, origin)
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

    def origin_of(self, state: object) -> str | None:
        """The panel origin a valid state carries, to address the popup's message; None otherwise."""
        try:
            origin = self.signer.verify(state).origin
        except HTTPError:
            return None
        return origin if origin in self.allowed_origins else None

    def complete(self, code: object, state: object, timing: ServerTiming, *,
                 identity: str | None = None) -> LinkResult:
        """Finish a link from the redirect (state names the agent) or a relayed code (Flex token does)."""
        if not isinstance(code, str) or not code or len(code) > MAX_CODE_CHARS:
            raise BadRequest("The authorization code is missing or malformed", code="invalid_code")
        if state is None and identity is not None:
            # The original plugin relays a code it got on FLEX_INSTANCE_URL/salesforce-oauth,
            # from an authorize URL it built itself: no state and no PKCE to check.
            verifier, redirect_uri, origin = None, self.relay_redirect_uri, None
        else:
            link_state = self.signer.verify(state)
            if identity is not None and identity.lower() != link_state.identity.lower():
                raise Forbidden("This link was started by another Flex user", code="state_mismatch")
            identity, origin = link_state.identity, link_state.origin
            if origin is not None and origin not in self.allowed_origins:
                # Signed with our secret but naming an origin we no longer allow (the settings
                # changed since /auth): the popup must not report to it.
                raise Forbidden("This sign-in was started from a page that is not allowed",
                                code="origin_not_allowed")
            verifier, redirect_uri = self.signer.code_verifier(link_state), self.callback_url
        with timing.span("sfdc-token", "Salesforce code exchange"):
            answer = self.salesforce.exchange_code(code, redirect_uri, verifier)
        with timing.span("sfdc-userinfo", "Salesforce userinfo"):
            user = self.salesforce.userinfo(answer["access_token"])
        self._check_user(identity, user, answer)
        self.keeper.link(identity, answer["access_token"], answer["refresh_token"])
        log.info("linked Flex user %s to Salesforce user %s", identity, user.get("preferred_username"))
        return LinkResult(identity, str(user["preferred_username"]),
                          str(user.get("name") or user["preferred_username"]), origin)

    def _check_user(self, identity: str, user: dict, answer: dict) -> None:
        """Refuse (and revoke the new tokens) unless the Salesforce user is this agent in our org."""
        username, org = user.get("preferred_username"), user.get("organization_id")
        if not isinstance(username, str) or not isinstance(org, str):
            raise BadGateway("Salesforce's userinfo lacks preferred_username or organization_id")
        refusal = None
        if not same_org(org, self.org_id):
            refusal = Forbidden(f"The Salesforce user {username} belongs to another Salesforce org; "
                                "sign in to your company's org", code="wrong_org")
        elif username.lower() != identity.lower():
            refusal = Forbidden(f"The Salesforce user {username} is not the Flex user {identity}; "
                                f"sign in to Salesforce as {identity}", code="identity_mismatch")
        if refusal is not None:
            self._revoke_quietly(answer["refresh_token"])
            log.warning("link refused for Flex user %s: %s", identity, refusal.code)
            raise refusal

    def _revoke_quietly(self, token: str) -> None:
        try:
            self.salesforce.revoke(token)
        except BadGateway as error:
            log.warning("could not revoke refused tokens: %s", error.code)
