"""The one place that builds the app from settings: clients, stores, cache, linker, lookups, routes.

`build_app(config, public_url)` is what `python run.py` (cli.py) and a WSGI host (wsgi.py) both
call; `build_services` is the part the functions reach as `context.services`, typed `Services`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .cache import LRUCache
from .call_log import CallLogger
from .clients.iam import FlexAgent, FlexTokenValidator
from .clients.salesforce import SalesforceClient
from .clients.sync import SyncClient
from .clients.transport import default_transport
from .config import Config, client_refusals_as_config_errors
from .errors import answer_for_failure
from .health import HealthCheck
from .keeper import TokenKeeper
from .linking import Linker
from .lookup import Lookup
from .metrics import CountedFlexChecks, Metrics
from .metrics_endpoint import PATH as METRICS_PATH, MetricsEndpoint
from .oauth_state import StateSigner, load_or_create_secret
from .runtime.app import App, Builtin, Limits
from .runtime.cors import origin_of
from .runtime.errors import BadRequest
from .runtime.routes import Asset, Function, build_routes, discover_functions
from .runtime.timing import ServerTiming
from .store import JsonFileTokenStore, TokenStore
from .sync_store import SyncTokenStore

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

    flex: CountedFlexChecks
    salesforce: SalesforceClient
    keeper: TokenKeeper
    linker: Linker
    lookup: Lookup
    flex_origin: str
    call_log: CallLogger

    def remembered_agent(self, event: dict, timing: ServerTiming, *,
                         token_in_url: bool = False) -> FlexAgent | None:
        """The Flex agent behind the request's `Token` when memory answers (nearly every
        request, within 5 minutes of IAM's answer), else None: then `identify` asks IAM.

        It never waits, so a handler calls it inside its concurrency slot, and calls
        `identify` inside `context.slot_released()`: a flood of bad tokens waiting on IAM then
        cannot turn into 429s for real agents, and a remembered token does not pay for giving
        the slot back and taking it again.
        """
        token = _token_of(event, token_in_url)
        with timing.span("flex", "Flex token check (cached, no IAM call)") as label:
            agent = self.flex.remembered(token)
            if agent is None:
                label[0] = None  # not a hop: `identify` times the real check
        return agent

    def identify(self, event: dict, timing: ServerTiming, *, token_in_url: bool = False,
                 client: str = "") -> FlexAgent:
        """The Flex agent behind the request's `Token`: Twilio IAM's answer (one call shared by
        every request with the same token meanwhile), remembered for up to 5 minutes. `client`
        is the caller's address (context.client_address): one whose token passed lately may use
        the IAM calls kept for known clients."""
        token = _token_of(event, token_in_url)
        with timing.span("flex", "Flex token check") as label:
            agent, cached = self.flex.validate_with_source(token, client)
            if cached:
                label[0] = "Flex token check (cached, no IAM call)"
        return agent


def _token_of(event: dict, token_in_url: bool) -> object:
    """The request's Flex token, from the body only: a URL ends up in proxy logs and browser
    history. Only `auth`'s popup, a page a browser navigates to, may carry it in the URL."""
    if not token_in_url and "Token" in event.get("request", {}).get("query", {}):
        raise BadRequest("Send the Flex token in the request body (field Token), not in the URL",
                         code="token_in_url")
    return event.get("Token")


def build_store(config: Config, transport: Sender) -> TokenStore:
    if config.token_store == "sync":
        return SyncTokenStore(SyncClient(config.twilio_sync_url, config.sync_service_sid,
                                         config.account_sid, config.auth_token, transport=transport),
                              recheck=config.sync_link_recheck)
    return JsonFileTokenStore(config.token_store_path)


def build_services(config: Config, public_url: str, transport: Sender | None = None,
                   metrics: Metrics | None = None) -> Services:
    """Everything the functions share; `public_url` is this server's base, for the OAuth callback.

    `transport` is the benchmark's and tests' own; by default a pooled one trusting the system CAs.
    `metrics` counts what they do (by default instruments nobody reads).
    """
    metrics = metrics or Metrics()
    transport = metrics.sender(transport or default_transport(ca_file=config.upstream_ca_file), {
        config.sfdc_instance_url: "salesforce", config.sfdc_login_url: "salesforce",
        config.twilio_iam_url: "iam", config.twilio_sync_url: "sync"})
    public_url = public_url.rstrip("/")
    with client_refusals_as_config_errors():
        salesforce = SalesforceClient(config.sfdc_instance_url, config.sfdc_client_id,
                                      config.sfdc_client_secret, login_url=config.sfdc_login_url,
                                      api_version=config.sfdc_api_version, transport=transport)
        flex = metrics.flex_checks(FlexTokenValidator(config.twilio_iam_url, config.account_sid,
                                                      config.auth_token, transport=transport))
        keeper = TokenKeeper(build_store(config, transport), salesforce, metrics.audit)
    secret = config.state_secret or load_or_create_secret(config.token_store_path.parent / "state-secret")
    flex_origin = origin_of(config.flex_instance_url)
    linker = Linker(salesforce, keeper, StateSigner(secret), org_id=config.sfdc_org_id,
                    callback_url=f"{public_url}/oauth-callback",
                    relay_redirect_uri=f"{config.flex_instance_url}/salesforce-oauth",
                    allowed_origins=(flex_origin, origin_of(public_url)),
                    original_login=config.original_plugin_login)
    cache = LRUCache(per_owner=config.cache_size, max_entries=MAX_CACHE_ENTRIES)
    metrics.watch_cache(cache)
    lookup = Lookup(salesforce, keeper, cache, ttl=config.cache_ttl, objects=config.lookup_objects)
    return Services(
        flex=flex, salesforce=salesforce, keeper=keeper, linker=linker, lookup=lookup,
        flex_origin=flex_origin, call_log=CallLogger(salesforce, keeper, lookup.user))


def default_functions_folder() -> Path:
    """The integration's functions: shipped inside the installed package, or the checkout's."""
    package = Path(__file__).resolve().parent
    installed = package / "functions"
    return installed if installed.is_dir() else package.parent / "functions"


def build_app(config: Config, public_url: str, *, functions: Path | None = None,
              limits: Limits = Limits(), live: bool = False,
              assets: dict[str, Asset] | None = None, metrics: Metrics | None = None,
              builtins: dict[str, Builtin] | None = None) -> App:
    """The configured App: routes from the functions folder (the integration's own by default),
    services from the config. `public_url` is this server's base as a browser reaches it: the
    caller's choice of PUBLIC_URL or the address the server listens on. `metrics` is the
    caller's when it watches more (cli.py: the server); `builtins` adds GET routes (the demo's)."""
    metrics = metrics or Metrics()
    found = discover_functions(functions or default_functions_folder())
    services = build_services(config, public_url, metrics=metrics)
    routes = build_routes(found, ORIGINAL_PLUGIN_PATHS)
    health = HealthCheck(services.keeper.store, config.token_store)
    scrape = MetricsEndpoint(metrics.registry, config.metrics_allow, config.metrics_token)
    labels = {path: fn.path.lstrip("/") for path, fn in routes.items()}
    labels.update({config.health_path: "healthz", METRICS_PATH: "metrics"})
    app = App(routes, found, env=dict(config.values),
              services=services, limits=limits, cors_origins=(config.flex_instance_url,),
              public_url=public_url, assets=assets, live=live,
              builtins={config.health_path: health, METRICS_PATH: scrape, **(builtins or {})},
              body_limits=integration_body_limits(routes, config.max_function_body),
              errors=answer_for_failure, observe=metrics.request_observer(labels))
    metrics.watch_app(app)
    return app


def integration_body_limits(routes: dict[str, Function], limit: int) -> dict[str, int]:
    """MAX_FUNCTION_BODY for the integration's own functions; others keep the runtime's 6 MiB."""
    own = default_functions_folder()
    return {path: limit for path, fn in routes.items() if fn.file.resolve().parent == own}
