"""Every setting sfdcflex reads, checked once at start-up and handed around frozen.

The names are the original plugin's serverless/.env names (ACCOUNT_SID ... FLEX_INSTANCE_URL)
plus sfdcflex's own; .env.example lists them all. Every bad value is reported at once, one line
each, naming the setting and never repeating a secret.
"""
from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Iterator, Mapping
from urllib.parse import urlsplit

from .clients.errors import UrlRefused
from .clients.transport import is_loopback_host
from .runtime.envfile import read_env_file
from .runtime.errors import ConfigError
from .private_files import check_settings_file, secure_settings_file
from .store import store_file_problems

DEFAULT_ENV_FILE = Path(".env")

# Names read from the process environment as well as the .env file (the environment wins,
# as with twilio-run and dotenv), so a deployment can inject secrets without writing a file.
SETTING_NAMES = (
    "ACCOUNT_SID", "AUTH_TOKEN", "SYNC_SERVICE_SID", "SFDC_INSTANCE_URL", "SFDC_ORG_ID",
    "SFDC_CLIENT_ID", "SFDC_CLIENT_SECRET", "FLEX_INSTANCE_URL", "SFDC_LOGIN_URL",
    "SFDC_API_VERSION", "PUBLIC_URL", "TOKEN_STORE", "TOKEN_STORE_PATH", "TWILIO_IAM_URL",
    "TWILIO_SYNC_URL", "STATE_SECRET", "CACHE_SIZE", "CACHE_TTL", "LOG_LEVEL", "LOG_FORMAT",
    "ORIGINAL_PLUGIN_LOGIN", "SFDC_LOOKUP_OBJECTS", "UPSTREAM_CA_FILE", "MAX_FUNCTION_BODY",
    "SYNC_LINK_RECHECK", "HEALTH_PATH", "METRICS_ALLOW", "METRICS_TOKEN",
)
# The objects get-contact searches, in the order a match wins (a Contact over a Lead).
LOOKUP_OBJECTS = ("Contact", "Lead")
SECRET_NAMES = frozenset({"AUTH_TOKEN", "SFDC_CLIENT_SECRET", "STATE_SECRET", "METRICS_TOKEN"})
# Who may read GET /metrics by address when METRICS_ALLOW is unset: this machine only.
DEFAULT_METRICS_ALLOW = "127.0.0.0/8,::1"
MIN_METRICS_TOKEN = 16
LOG_LEVELS = ("info", "debug", "warning", "error")
LOG_FORMATS = ("text", "json")
# What .env.example holds where a real value must go ("ACxxxx...", "https://your-domain...").
_PLACEHOLDER = re.compile(r"xxxx|your-domain|your-server", re.IGNORECASE)
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")

_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
_SYNC_SERVICE_SID = re.compile(r"IS[0-9a-fA-F]{32}")
_ORG_ID = re.compile(r"00D[A-Za-z0-9]{12}(?:[A-Za-z0-5]{3})?")
_API_VERSION = re.compile(r"[0-9]{2}\.[0-9]")
# A path of plain segments (RFC 3986 unreserved characters): no query, escape or dot-segment.
_HEALTH_PATH = re.compile(r"(?:/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+")
# An 18-character Salesforce id appends three characters that record which of the first 15
# are upper case, five per character, as an index into this alphabet.
_CASE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
MIN_STATE_SECRET = 32


@dataclass(frozen=True)
class Config:
    """The validated settings; secrets are left out of repr so a log line never shows them."""

    account_sid: str
    auth_token: str = field(repr=False)
    sync_service_sid: str | None
    sfdc_instance_url: str
    sfdc_org_id: str
    sfdc_client_id: str
    sfdc_client_secret: str = field(repr=False)
    flex_instance_url: str
    sfdc_login_url: str
    sfdc_api_version: str
    public_url: str | None
    token_store: str
    token_store_path: Path
    twilio_iam_url: str
    twilio_sync_url: str
    state_secret: bytes | None = field(repr=False)
    cache_size: int
    cache_ttl: float
    sync_link_recheck: float
    log_level: str
    log_format: str
    original_plugin_login: bool
    max_function_body: int
    values: Mapping[str, str] = field(repr=False)
    lookup_objects: tuple[str, ...] = LOOKUP_OBJECTS
    # Tests and the benchmark only: trust this CA bundle instead of the system's for upstream TLS.
    upstream_ca_file: str | None = None
    health_path: str = "/healthz"
    metrics_allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = tuple(
        ipaddress.ip_network(net) for net in DEFAULT_METRICS_ALLOW.split(","))
    metrics_token: str | None = field(default=None, repr=False)


class _Checker:
    """Reads settings one by one and notes every problem, so an operator sees them all at once."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = values
        self.problems: list[str] = []
        self._failed: set[str] = set()

    def fail(self, name: str, text: str) -> None:
        if name not in self._failed:
            self._failed.add(name)
            self.problems.append(f"config: {name} {text}")

    def text(self, name: str, *, required: bool = False) -> str:
        """The stripped value, "" when unset; a placeholder or a missing required value is noted."""
        value = self.values.get(name, "").strip()
        if value and name not in SECRET_NAMES and _PLACEHOLDER.search(value):
            self.fail(name, "still holds the placeholder from .env.example; put your own value there")
            return ""
        if required and not value:
            self.fail(name, "is required (see .env.example)")
        return value

    def matching(self, name: str, pattern: re.Pattern, meaning: str, required: bool = True) -> str | None:
        value = self.text(name, required=required)
        if value and not pattern.fullmatch(value):
            self.fail(name, f"must be {meaning}")
        return value or None

    def url(self, name: str, default: str | None = None, required: bool = False) -> str | None:
        value = self.text(name, required=required) or default
        if not value:
            return None
        problem = _url_problem(value)
        if problem:
            self.fail(name, problem)
        return value.rstrip("/")

    def number(self, name: str, default: float, low: float, high: float, integer: bool) -> float:
        raw = self.text(name)
        if not raw:
            return default
        try:
            number = int(raw) if integer else float(raw)
        except ValueError:
            number = math.nan
        if not low <= number <= high:
            kind = "a whole number" if integer else "a number"
            self.fail(name, f"must be {kind} from {low:g} to {high:g}")
            return default
        return number

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        """One of `choices` (case-insensitive); the first is the default."""
        value = self.text(name).lower() or choices[0]
        if value not in choices:
            self.fail(name, f"must be {', '.join(choices[:-1])} or {choices[-1]}")
            return choices[0]
        return value

    def flag(self, name: str) -> bool:
        """A yes/no setting; unset is no. Anything but the usual spellings is refused, not guessed."""
        raw = self.text(name).lower()
        if raw and raw not in _TRUE and raw not in _FALSE:
            self.fail(name, "must be true or false")
        return raw in _TRUE

    def lookup_objects(self) -> tuple[str, ...]:
        """SFDC_LOOKUP_OBJECTS: Contact alone, or Contact and Lead (the default)."""
        raw = self.text("SFDC_LOOKUP_OBJECTS")
        if not raw:
            return LOOKUP_OBJECTS
        named = {part.strip().lower() for part in raw.split(",") if part.strip()}
        if "contact" not in named or not named <= {name.lower() for name in LOOKUP_OBJECTS}:
            self.fail("SFDC_LOOKUP_OBJECTS", "must be Contact or Contact,Lead")
            return LOOKUP_OBJECTS
        return tuple(name for name in LOOKUP_OBJECTS if name.lower() in named)

    def networks(self, name: str, default: str) -> tuple:
        """A comma-separated list of addresses and networks (10.0.0.0/8, ::1); "none" for none."""
        raw = self.text(name) or default
        if raw.strip().lower() == "none":
            return ()
        try:
            return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in raw.split(","))
        except ValueError:
            self.fail(name, "must be addresses or networks separated by commas (127.0.0.1,10.0.0.0/8), or none")
            return ()

    def secret(self, name: str, min_length: int) -> str | None:
        value = self.text(name)
        if value and len(value) < min_length:
            self.fail(name, f"must be at least {min_length} characters")
        return value or None

    def ca_file(self) -> str | None:
        """UPSTREAM_CA_FILE, for tests and the benchmark only: an existing PEM file, or None."""
        path = self.text("UPSTREAM_CA_FILE")
        if path and not Path(path).is_file():
            self.fail("UPSTREAM_CA_FILE", "must name a PEM file of CA certificates (for tests only)")
        return path or None

    def unknown_names(self) -> None:
        """A name close to one of ours is a typo: say which setting was meant.

        Other names are left alone: as on Twilio, every .env value reaches the functions as
        `context.NAME`, and a function of your own may read a name sfdcflex does not know.
        """
        for name in sorted(set(self.values) - set(SETTING_NAMES)):
            close = difflib.get_close_matches(name, SETTING_NAMES, n=1, cutoff=0.8)
            if close:
                self.fail(name, f"is not a setting sfdcflex knows; did you mean {close[0]}?")
                if not self.values.get(close[0], "").strip():
                    self._failed.add(close[0])  # one mistake, one line: not also "is required"


def _url_problem(value: str) -> str | None:
    """Why `value` cannot be an upstream or public base URL, or None when it can."""
    try:
        parts = urlsplit(value)
        parts.port   # raises ValueError on a non-numeric or out-of-range port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an absolute https:// URL"
    if parts.username is not None or parts.password is not None:
        return "must not contain a user name or password"
    if parts.query or parts.fragment or "?" in value or "#" in value:
        return "must not have a query string or fragment"
    # Tokens and client secrets travel over these URLs: plain http is only safe on this machine.
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        return "must use https:// (http:// is allowed only for localhost or 127.0.0.1)"
    return None


def load_config(values: Mapping[str, str]) -> Config:
    """Check every setting in `values` (from the .env file and environment) and freeze them.

    ConfigError lists every problem found, not just the first.
    """
    check = _Checker(values)
    check.unknown_names()
    account_sid = check.matching("ACCOUNT_SID", _ACCOUNT_SID,
                                 "a Twilio account SID (AC followed by 32 hex digits)")
    token_store = check.choice("TOKEN_STORE", ("json", "sync"))
    instance_url = check.url("SFDC_INSTANCE_URL", required=True)
    state_secret = check.text("STATE_SECRET")
    if state_secret and len(state_secret) < MIN_STATE_SECRET:
        check.fail("STATE_SECRET", f"must be at least {MIN_STATE_SECRET} characters "
                   "(leave it unset to have one generated and kept beside the token store)")
    config = dict(
        account_sid=account_sid, auth_token=check.text("AUTH_TOKEN", required=True),
        sync_service_sid=check.matching(
            "SYNC_SERVICE_SID", _SYNC_SERVICE_SID,
            "a Twilio Sync service SID (IS followed by 32 hex digits)", required=token_store == "sync"),
        sfdc_instance_url=instance_url,
        sfdc_org_id=check.matching("SFDC_ORG_ID", _ORG_ID,
                                   "a 15- or 18-character Salesforce org id (starts with 00D)"),
        sfdc_client_id=check.text("SFDC_CLIENT_ID", required=True),
        sfdc_client_secret=check.text("SFDC_CLIENT_SECRET", required=True),
        flex_instance_url=check.url("FLEX_INSTANCE_URL", required=True),
        sfdc_login_url=check.url("SFDC_LOGIN_URL", instance_url),
        sfdc_api_version=check.matching("SFDC_API_VERSION", _API_VERSION,
                                        "a Salesforce API version such as 62.0",
                                        required=False) or "62.0",
        public_url=check.url("PUBLIC_URL"),
        token_store=token_store,
        token_store_path=Path(check.text("TOKEN_STORE_PATH") or ".data/tokens.json"),
        twilio_iam_url=check.url("TWILIO_IAM_URL", "https://iam.twilio.com"),
        twilio_sync_url=check.url("TWILIO_SYNC_URL", "https://sync.twilio.com"),
        state_secret=state_secret.encode("utf-8") or None,
        cache_size=int(check.number("CACHE_SIZE", 100, 1, 100_000, integer=True)),
        cache_ttl=float(check.number("CACHE_TTL", 300.0, 0, 86_400, integer=False)),
        sync_link_recheck=float(check.number("SYNC_LINK_RECHECK", 0.0, 0, 300, integer=False)),
        log_level=check.choice("LOG_LEVEL", LOG_LEVELS),
        log_format=check.choice("LOG_FORMAT", LOG_FORMATS),
        original_plugin_login=check.flag("ORIGINAL_PLUGIN_LOGIN"),
        lookup_objects=check.lookup_objects(),
        # The integration's requests are a token and a phone number or an OAuth code: a few
        # hundred bytes. 64 KiB leaves room, and bounds what a stranger makes us read and parse.
        max_function_body=int(check.number("MAX_FUNCTION_BODY", 64 * 1024, 1024,
                                           6 * 1024 * 1024, integer=True)),
        values=MappingProxyType(dict(values)),
        upstream_ca_file=check.ca_file(),
        health_path=check.matching("HEALTH_PATH", _HEALTH_PATH,
                                   "a path of plain segments such as /healthz or /sfdcflex/health",
                                   required=False) or "/healthz",
        metrics_allow=check.networks("METRICS_ALLOW", DEFAULT_METRICS_ALLOW),
        metrics_token=check.secret("METRICS_TOKEN", MIN_METRICS_TOKEN),
    )
    if check.problems:
        raise ConfigError(*check.problems)
    return Config(**config)


def read_settings(env_file: Path | str | None = None, overrides: dict[str, str] | None = None) -> Config:
    """Settings from the .env file, then the process environment for the same names, then overrides.

    With no file named, .env is read when there is one; a file that is named must exist.
    """
    if env_file is None:
        env_file = DEFAULT_ENV_FILE if DEFAULT_ENV_FILE.exists() else None
    values = settings_from(_read_settings_file(Path(env_file)) if env_file else {}, os.environ)
    values.update(overrides or {})
    return load_config(values)


def _read_settings_file(path: Path) -> dict[str, str]:
    """The .env file's values, read only if it is a regular file no other user may change, and
    made (or found) closed to other users when it holds a secret (private_files.py)."""
    info = check_settings_file(path)
    values = read_env_file(path)
    if info is not None:
        secure_settings_file(path, info, any(values.get(name) for name in SECRET_NAMES))
    return values


def check_settings(env_file: Path | str | None) -> Config:
    """read_settings, then what the token store needs on disk; ConfigError lists every problem."""
    config = read_settings(env_file)
    if config.token_store == "json" or config.state_secret is None:
        # The generated state secret is kept beside the token store path, for the Sync store too.
        problems = store_file_problems(config.token_store_path, with_file=config.token_store == "json")
        if problems:
            raise ConfigError(*problems)
    return config


@contextmanager
def client_refusals_as_config_errors() -> Iterator[None]:
    """A URL setting a client refuses when it is built (clients.errors.UrlRefused) stops start-up
    with the client's own line, like any other bad setting."""
    try:
        yield
    except UrlRefused as refused:
        raise ConfigError(str(refused)) from None


def unknown_names(values: Mapping[str, str]) -> list[str]:
    """Names in `values` that are not sfdcflex settings: they reach the functions as context only."""
    return sorted(set(values) - set(SETTING_NAMES))


def settings_from(env_file: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """The .env values with any of sfdcflex's setting names overridden from the environment."""
    merged = dict(env_file)
    merged.update({name: environ[name] for name in SETTING_NAMES if name in environ})
    return merged


def _org_id_15(org_id: str) -> str | None:
    """The case-sensitive 15-character form of a Salesforce id, or None if it is not one."""
    if len(org_id) == 15:
        return org_id
    if len(org_id) != 18:
        return None
    # The suffix restores the exact case even when the 18-character id was case-folded.
    chars = list(org_id[:15])
    for chunk, marker in enumerate(org_id[15:].upper()):
        bits = _CASE_ALPHABET.find(marker)
        if bits < 0:
            return None
        for offset in range(5):
            index = chunk * 5 + offset
            upper = bool(bits >> offset & 1)
            chars[index] = chars[index].upper() if upper else chars[index].lower()
    return "".join(chars)


def same_org(a: str, b: str) -> bool:
    """Whether two Salesforce org ids, 15- or 18-character, name the same org."""
    if not (isinstance(a, str) and isinstance(b, str)):
        return False
    short_a, short_b = _org_id_15(a.strip()), _org_id_15(b.strip())
    return short_a is not None and short_a == short_b
