"""Every setting sfdcflex reads, checked once at start-up and handed around frozen.

The names are the original plugin's serverless/.env names (ACCOUNT_SID ... FLEX_INSTANCE_URL)
plus sfdcflex's own; .env.example lists them all. A bad value stops start-up with one line
that names the setting and never repeats a secret.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping
from urllib.parse import urlsplit

from .clients.transport import is_loopback_host
from .runtime.errors import ConfigError

# Names read from the process environment as well as the .env file (the environment wins,
# as with twilio-run and dotenv), so a deployment can inject secrets without writing a file.
SETTING_NAMES = (
    "ACCOUNT_SID", "AUTH_TOKEN", "SYNC_SERVICE_SID", "SFDC_INSTANCE_URL", "SFDC_ORG_ID",
    "SFDC_CLIENT_ID", "SFDC_CLIENT_SECRET", "FLEX_INSTANCE_URL", "SFDC_LOGIN_URL",
    "SFDC_API_VERSION", "PUBLIC_URL", "TOKEN_STORE", "TOKEN_STORE_PATH", "TWILIO_IAM_URL",
    "TWILIO_SYNC_URL", "STATE_SECRET", "CACHE_SIZE", "CACHE_TTL",
    "MAX_FUNCTION_BODY",
)

_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
_SYNC_SERVICE_SID = re.compile(r"IS[0-9a-fA-F]{32}")
_ORG_ID = re.compile(r"00D[A-Za-z0-9]{12}(?:[A-Za-z0-5]{3})?")
_API_VERSION = re.compile(r"[0-9]{2}\.[0-9]")
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
    max_function_body: int
    values: Mapping[str, str] = field(repr=False)


def _fail(message: str) -> ConfigError:
    return ConfigError(f"config: {message}")


def _required(values: Mapping[str, str], name: str) -> str:
    value = values.get(name, "").strip()
    if not value:
        raise _fail(f"{name} is required (see .env.example)")
    return value


def _matching(values: Mapping[str, str], name: str, pattern: re.Pattern, meaning: str,
              required: bool = True) -> str | None:
    value = _required(values, name) if required else values.get(name, "").strip()
    if value and not pattern.fullmatch(value):
        raise _fail(f"{name} must be {meaning}")
    return value or None


def _url(values: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    value = values.get(name, "").strip() or default
    if value is None:
        return None
    try:
        parts = urlsplit(value)
        parts.port   # raises ValueError on a non-numeric or out-of-range port
    except ValueError:
        raise _fail(f"{name} is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise _fail(f"{name} must be an absolute https:// URL")
    if parts.username is not None or parts.password is not None:
        raise _fail(f"{name} must not contain a user name or password")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise _fail(f"{name} must not have a query string or fragment")
    # Tokens and client secrets travel over these URLs: plain http is only safe on this machine.
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise _fail(f"{name} must use https:// "
                    "(http:// is allowed only for localhost or 127.0.0.1)")
    return value.rstrip("/")


def _number(values: Mapping[str, str], name: str, default: float, low: float, high: float,
            integer: bool) -> float:
    raw = values.get(name, "").strip()
    if not raw:
        return default
    try:
        number = int(raw) if integer else float(raw)
    except ValueError:
        number = math.nan
    if not low <= number <= high:
        kind = "a whole number" if integer else "a number"
        raise _fail(f"{name} must be {kind} from {low:g} to {high:g}")
    return number


def _required_url(values: Mapping[str, str], name: str) -> str:
    _required(values, name)
    return _url(values, name)


def load_config(values: Mapping[str, str]) -> Config:
    """Check every setting in `values` (from the .env file and environment) and freeze them."""
    account_sid = _matching(values, "ACCOUNT_SID", _ACCOUNT_SID,
                            "a Twilio account SID (AC followed by 32 hex digits)")
    auth_token = _required(values, "AUTH_TOKEN")
    token_store = (values.get("TOKEN_STORE", "").strip() or "json").lower()
    if token_store not in ("json", "sync"):
        raise _fail("TOKEN_STORE must be json or sync")
    sync_service_sid = _matching(values, "SYNC_SERVICE_SID", _SYNC_SERVICE_SID,
                                 "a Twilio Sync service SID (IS followed by 32 hex digits)",
                                 required=token_store == "sync")
    instance_url = _required_url(values, "SFDC_INSTANCE_URL")
    org_id = _matching(values, "SFDC_ORG_ID", _ORG_ID,
                       "a 15- or 18-character Salesforce org id (starts with 00D)")
    client_id = _required(values, "SFDC_CLIENT_ID")
    client_secret = _required(values, "SFDC_CLIENT_SECRET")
    flex_url = _required_url(values, "FLEX_INSTANCE_URL")
    state_secret = values.get("STATE_SECRET", "").strip()
    if state_secret and len(state_secret) < MIN_STATE_SECRET:
        raise _fail(f"STATE_SECRET must be at least {MIN_STATE_SECRET} characters "
                    "(leave it unset to have one generated and kept beside the token store)")
    return Config(
        account_sid=account_sid, auth_token=auth_token, sync_service_sid=sync_service_sid,
        sfdc_instance_url=instance_url, sfdc_org_id=org_id, sfdc_client_id=client_id,
        sfdc_client_secret=client_secret, flex_instance_url=flex_url,
        sfdc_login_url=_url(values, "SFDC_LOGIN_URL", instance_url),
        sfdc_api_version=_matching(values, "SFDC_API_VERSION", _API_VERSION,
                                   "a Salesforce API version such as 62.0",
                                   required=False) or "62.0",
        public_url=_url(values, "PUBLIC_URL"),
        token_store=token_store,
        token_store_path=Path(values.get("TOKEN_STORE_PATH", "").strip() or ".data/tokens.json"),
        twilio_iam_url=_url(values, "TWILIO_IAM_URL", "https://iam.twilio.com"),
        twilio_sync_url=_url(values, "TWILIO_SYNC_URL", "https://sync.twilio.com"),
        state_secret=state_secret.encode("utf-8") or None,
        cache_size=int(_number(values, "CACHE_SIZE", 100, 1, 100_000, integer=True)),
        cache_ttl=float(_number(values, "CACHE_TTL", 300.0, 0, 86_400, integer=False)),
        # The integration's requests are a token and a phone number or an OAuth code: a few
        # hundred bytes. 64 KiB leaves room, and bounds what a stranger makes us read and parse.
        max_function_body=int(_number(values, "MAX_FUNCTION_BODY", 64 * 1024, 1024,
                                      6 * 1024 * 1024, integer=True)),
        values=MappingProxyType(dict(values)),
    )


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
