"""Everything the functions share, built once from the config: clients, stores, cache, linker, lookups."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ContextManager

from .cache import LRUCache
from .call_log import CallLogger
from .config import Config
from .clients.iam import FlexAgent, FlexTokenValidator
from .keeper import TokenKeeper
from .linking import Linker
from .lookup import Lookup
from .oauth_state import StateSigner, load_or_create_secret
from .runtime.cors import origin_of
from .runtime.errors import BadRequest
from .clients.salesforce import SalesforceClient
from .store import JsonFileTokenStore, TokenStore
from .sync_store import SyncTokenStore
from .clients.sync import SyncClient
from .runtime.timing import ServerTiming
from .clients.transport import default_transport

if TYPE_CHECKING:
    from .clients.transport import Sender

# The original Flex plugin calls these paths; they answer exactly like the new names.
ORIGINAL_PLUGIN_PATHS = {
    "/get-access-token": "/oauth-callback",
    "/get-username": "/get-user",
    "/get-contact-account-data": "/get-contact",
}
MAX_CACHE_ENTRIES = 50_000


@dataclass(frozen=True)
class Services:
    """What a handler reaches through `context.services`."""

    flex: FlexTokenValidator
    salesforce: SalesforceClient
    keeper: TokenKeeper
    linker: Linker
    lookup: Lookup
    flex_origin: str
    call_log: CallLogger

    def identify(self, event: dict, timing: ServerTiming,
                 outside_the_slot: Callable[[], ContextManager] = nullcontext, *,
                 token_in_url: bool = False) -> FlexAgent:
        """The Flex agent behind the request's `Token` (Twilio IAM, cached for up to 5 minutes).

        The token is taken from the body only: a URL ends up in proxy logs and browser history.
        Only `auth`'s popup, a page a browser navigates to, may carry it in the URL.
        """
        if not token_in_url and "Token" in event.get("request", {}).get("query", {}):
            raise BadRequest("Send the Flex token in the request body (field Token), not in the URL",
                             code="token_in_url")
        # Waiting for IAM is not the function's own work: it gives its concurrency slot back
        # meanwhile (the runtime's `context.outside_the_slot`), so a flood of bad tokens cannot turn
        # into 429s for real agents.
        with timing.span("flex", "Flex token check") as label, outside_the_slot():
            agent, cached = self.flex.validate_with_source(event.get("Token"))
            if cached:
                label[0] = "Flex token check (cached, no IAM call)"
        return agent


def build_store(config: Config, transport: Sender) -> TokenStore:
    if config.token_store == "sync":
        return SyncTokenStore(SyncClient(config.twilio_sync_url, config.sync_service_sid,
                                         config.account_sid, config.auth_token, transport=transport),
                              recheck=config.sync_link_recheck)
    return JsonFileTokenStore(config.token_store_path)


def build_services(config: Config, *, public_url: str,
                   transport: Sender | None = None) -> Services:
    """Everything the functions share; `public_url` is this server's base (PUBLIC_URL or its own address)."""
    transport = transport or default_transport(ca_file=config.upstream_ca_file)
    public_url = public_url.rstrip("/")
    salesforce = SalesforceClient(config.sfdc_instance_url, config.sfdc_client_id,
                                  config.sfdc_client_secret, login_url=config.sfdc_login_url,
                                  api_version=config.sfdc_api_version, transport=transport)
    keeper = TokenKeeper(build_store(config, transport), salesforce)
    secret = config.state_secret or load_or_create_secret(config.token_store_path.parent / "state-secret")
    flex_origin = origin_of(config.flex_instance_url)
    linker = Linker(salesforce, keeper, StateSigner(secret), org_id=config.sfdc_org_id,
                    callback_url=f"{public_url}/oauth-callback",
                    relay_redirect_uri=f"{config.flex_instance_url}/salesforce-oauth",
                    allowed_origins=(flex_origin, origin_of(public_url)),
                    original_login=config.original_plugin_login)
    cache = LRUCache(per_owner=config.cache_size, max_entries=MAX_CACHE_ENTRIES)
    return Services(
        flex=FlexTokenValidator(config.twilio_iam_url, config.account_sid, config.auth_token,
                                transport=transport),
        salesforce=salesforce, keeper=keeper, linker=linker,
        lookup=Lookup(salesforce, keeper, cache, ttl=config.cache_ttl, objects=config.lookup_objects),
        flex_origin=flex_origin, call_log=CallLogger(salesforce, keeper))
