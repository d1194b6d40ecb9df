"""Flex token checks against Twilio IAM, with positive answers cached by a hash of the token.

Twilio IAM's `POST /v1/Accounts/{AccountSid}/Tokens/validate` (Basic auth with the account's
SID and auth token, JSON `{"token": ...}`) answers `{"valid": true, "realm_user_id", "roles",
"expiration", ...}` for a good Flex token. The token itself is never stored or logged: the
cache key is its SHA-256.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable

from ..runtime.errors import BadGateway, BadRequest, Forbidden
from .transport import basic_auth, call, check_upstream_url, default_transport

if TYPE_CHECKING:
    from .transport import Sender

log = logging.getLogger("sfdcflex")
MAX_TOKEN_CHARS = 16 * 1024
MAX_MESSAGE_CHARS = 200


@dataclass(frozen=True)
class FlexAgent:
    """A Flex user whose token IAM accepted: identity is IAM's realm_user_id."""

    identity: str
    roles: tuple[str, ...]
    expires_at: float


class FlexTokenValidator:
    """Validate Flex tokens with Twilio IAM; at most one IAM call per token per cache period."""

    def __init__(self, iam_url: str, account_sid: str, auth_token: str, *,
                 transport: Sender | None = None,
                 clock: Callable[[], float] = time.time, timeout: float = 5.0,
                 max_cache_ttl: float = 300.0, cache_size: int = 10_000) -> None:
        base = check_upstream_url("TWILIO_IAM_URL", iam_url)
        self._validate_url = f"{base}/v1/Accounts/{account_sid}/Tokens/validate"
        self._authorization = basic_auth(account_sid, auth_token)
        self._transport = transport or default_transport()
        self._clock = clock
        self._timeout = timeout
        self._max_cache_ttl = max_cache_ttl
        self._cache_size = cache_size
        self._cache: OrderedDict[str, tuple[float, FlexAgent]] = OrderedDict()
        self._lock = threading.Lock()

    def validate(self, token: object) -> FlexAgent:
        """Return the agent a Flex token belongs to, or raise BadRequest / Forbidden / BadGateway."""
        return self.validate_with_source(token)[0]

    def validate_with_source(self, token: object) -> tuple[FlexAgent, bool]:
        """The agent, and whether the answer came from the cache (no IAM call was made)."""
        if not isinstance(token, str) or not token.strip():
            raise BadRequest("The Flex token (body field Token) is missing", code="missing_token")
        if len(token) > MAX_TOKEN_CHARS:
            raise Forbidden("The Flex token is not valid", code="invalid_token")
        key = hashlib.sha256(token.encode("utf-8")).hexdigest()
        cached = self._cached(key)
        if cached is not None:
            return cached, True
        agent = self._ask_iam(token)
        self._remember(key, agent)
        return agent, False

    def _cached(self, key: str) -> FlexAgent | None:
        now = self._clock()
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            deadline, agent = entry
            if now >= deadline:
                del self._cache[key]
                return None
            self._cache.move_to_end(key)
            return agent

    def _remember(self, key: str, agent: FlexAgent) -> None:
        deadline = min(agent.expires_at, self._clock() + self._max_cache_ttl)
        with self._lock:
            self._cache[key] = (deadline, agent)
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _ask_iam(self, token: str) -> FlexAgent:
        try:
            reply = call(self._transport, "Twilio IAM", "POST", self._validate_url, idempotent=True,
                         headers={"Authorization": self._authorization},
                         json_body={"token": token}, timeout=self._timeout)
            answer = reply.json() if reply.status == 200 else None
        except BadGateway as error:
            raise BadGateway(error.message, code="iam_unavailable") from None
        if reply.status in (401, 404):
            # The operator's hint goes to the log; a client learns only that the server is at fault.
            log.error("Twilio IAM answered %d to the token check: check ACCOUNT_SID, AUTH_TOKEN and "
                      "TWILIO_IAM_URL", reply.status)
            raise BadGateway("Twilio IAM refused this server's own credentials, so no Flex token can "
                             "be checked", code="iam_credentials_rejected")
        if reply.status == 400:
            raise Forbidden("The Flex token is not valid", code="invalid_token")
        if not isinstance(answer, dict):
            raise BadGateway(f"Twilio IAM answered {reply.status} without a JSON object",
                             code="iam_unavailable")
        return self._agent_from(answer, token)

    def _agent_from(self, answer: dict, token: str) -> FlexAgent:
        identity = answer.get("realm_user_id")
        if answer.get("valid") is not True or not isinstance(identity, str) or not identity:
            raise Forbidden(_rejection_message(answer.get("message"), token), code="invalid_token")
        roles = answer.get("roles")
        role_names = tuple(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else ()
        expires_at = _parse_expiration(answer.get("expiration"))
        if expires_at is None:
            expires_at = self._clock() + self._max_cache_ttl
        return FlexAgent(identity=identity, roles=role_names, expires_at=expires_at)


def _rejection_message(iam_message: object, token: str) -> str:
    """IAM's reason when it is a short string that does not echo the token back."""
    if isinstance(iam_message, str) and iam_message.strip() and token not in iam_message:
        return f"The Flex token is not valid: {iam_message.strip()[:MAX_MESSAGE_CHARS]}"
    return "The Flex token is not valid"


def _parse_expiration(value: object) -> float | None:
    """IAM's `expiration` is ISO 8601 (e.g. 2024-05-01T12:00:00.000Z); None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()
