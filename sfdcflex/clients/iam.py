"""Flex token checks against Twilio IAM, with answers cached by a hash of the token.

Twilio IAM's `POST /v1/Accounts/{AccountSid}/Tokens/validate` (Basic auth with the account's
SID and auth token, JSON `{"token": ...}`) answers `{"valid": true, "realm_user_id", "roles",
"expiration", ...}` for a good Flex token. The token itself is never stored or logged: the
cache key is its BLAKE2b digest: hashlib's own code, where OpenSSL's SHA-256 took half as long again
on a request that finds the CPU's caches cold, as a panel's every few seconds does (34 against
23 µs, in process, the caches flushed before each of 150 hashes).

Invalid tokens are remembered too (a negative cache, 60 s), and concurrent checks of the same
unknown token share one IAM call (single-flight): otherwise a flood of one garbage token costs
one IAM call per request, against the account's IAM rate limits.
"""
from __future__ import annotations

import copy
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable

from .errors import (IamBusy, IamCredentialsRefused, IamUnavailable, NotJson, TokenMissing, TokenRefused,
                     Unreachable)
from .transport import basic_auth, call, check_upstream_url, default_transport

if TYPE_CHECKING:
    from .transport import Sender

log = logging.getLogger("sfdcflex")
MAX_TOKEN_CHARS = 16 * 1024
MAX_MESSAGE_CHARS = 200
NEGATIVE_TTL = 60.0
# IAM calls in flight at once. Past it a check waits a moment, then answers 503: a flood of
# distinct garbage tokens must not turn into a flood of IAM calls, nor hold every worker.
MAX_IAM_CALLS = 8
IAM_QUEUE_SECONDS = 0.5
# Of those, kept for clients (by address) whose token passed a check lately: outsiders' random
# tokens can fill the others, never these, so an agent's fresh token (Flex renews it) gets through.
RESERVED_IAM_CALLS = 2
KNOWN_CLIENT_SECONDS = 12 * 3600   # a Flex shift
MAX_KNOWN_CLIENTS = 10_000
# IAM's error statuses -> what they mean: a 400 is a request without a usable token; 401 and 404
# are this server's own account SID or auth token refused. Any other status but 200 (a 429, a
# 5xx) is IAM failing: IamUnavailable.
REFUSALS = {400: TokenRefused, 401: IamCredentialsRefused, 404: IamCredentialsRefused}


class _Flight:
    """One IAM call in progress; other checks of the same token wait for its outcome."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.agent: FlexAgent | None = None
        self.error: Exception | None = None


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
                 max_cache_ttl: float = 300.0, cache_size: int = 10_000,
                 negative_ttl: float = NEGATIVE_TTL, max_calls: int = MAX_IAM_CALLS,
                 reserved_calls: int = RESERVED_IAM_CALLS) -> None:
        base = check_upstream_url("TWILIO_IAM_URL", iam_url)
        self._validate_url = f"{base}/v1/Accounts/{account_sid}/Tokens/validate"
        self._authorization = basic_auth(account_sid, auth_token)
        self._transport = transport or default_transport()
        self._clock = clock
        self._timeout = timeout
        self._max_cache_ttl = max_cache_ttl
        self._cache_size = cache_size
        self._negative_ttl = negative_ttl
        self._cache: OrderedDict[str, tuple[float, FlexAgent]] = OrderedDict()
        self._refused: OrderedDict[str, tuple[float, TokenRefused]] = OrderedDict()
        self._flights: dict[str, _Flight] = {}
        reserved = min(reserved_calls, max_calls - 1) if max_calls > 1 else 0   # one stays open
        self._calls = threading.BoundedSemaphore(max_calls - reserved)    # anyone's
        self._reserved = threading.BoundedSemaphore(reserved) if reserved else None
        self._known: OrderedDict[str, float] = OrderedDict()   # client -> until when it is known
        self._lock = threading.Lock()

    def validate(self, token: object, client: str = "") -> FlexAgent:
        """Return the agent a Flex token belongs to, or raise an IamError (TokenMissing, TokenRefused, ...)."""
        return self.validate_with_source(token, client)[0]

    def remembered(self, token: object) -> FlexAgent | None:
        """The agent when memory answers for the token (no IAM call, no wait), else None.

        Raises as `validate` does for a missing or overlong token, or one refused lately."""
        return self._cached(self._key(token))

    @staticmethod
    def _key(token: object) -> bytes:
        if not isinstance(token, str) or not token.strip():
            raise TokenMissing("The Flex token (body field Token) is missing")
        if len(token) > MAX_TOKEN_CHARS:
            raise TokenRefused("The Flex token is not valid")
        return hashlib.blake2b(token.encode("utf-8")).digest()

    def validate_with_source(self, token: object, client: str = "") -> tuple[FlexAgent, bool]:
        """The agent, and whether the answer came from the cache (no IAM call was made).

        `client` names the caller (its address): one whose token passed lately may use the IAM
        calls kept in reserve."""
        key = self._key(token)
        cached = self._cached(key)
        if cached is not None:
            return cached, True
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if leader:
                flight = self._flights[key] = _Flight()
        if not leader:
            return self._outcome_of(flight), True
        try:
            agent, cached = self._lead(key, token, flight, client)
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()
        if client:
            self._know(client)
        return agent, cached

    def _lead(self, key: bytes, token: str, flight: _Flight, client: str) -> tuple[FlexAgent, bool]:
        """Ask IAM about a token no other check is asking about; the outcome is shared."""
        try:
            agent = self._cached(key)  # a flight that ended just now left its answer here
            if agent is not None:
                flight.agent = agent
                return agent, True
            flight.agent = self._ask_iam_within_bound(token, client)
            self._remember(key, flight.agent)
            return flight.agent, False
        except Exception as error:
            flight.error = error
            if isinstance(error, TokenRefused):
                self._remember_refusal(key, error)
            raise

    def _ask_iam_within_bound(self, token: str, client: str) -> FlexAgent:
        places = self._calls
        if self._reserved is not None and self._is_known(client) and self._reserved.acquire(blocking=False):
            places = self._reserved
        elif not self._calls.acquire(timeout=IAM_QUEUE_SECONDS):
            raise IamBusy("too many Flex token checks at once; retry shortly", retry_after=1)
        try:
            return self._ask_iam(token)
        finally:
            places.release()

    def _is_known(self, client: str) -> bool:
        with self._lock:
            until = self._known.get(client)
        return until is not None and self._clock() < until

    def _know(self, client: str) -> None:
        """Remember a client whose token just passed (bounded: the oldest is forgotten)."""
        with self._lock:
            self._known[client] = self._clock() + KNOWN_CLIENT_SECONDS
            self._known.move_to_end(client)
            while len(self._known) > MAX_KNOWN_CLIENTS:
                self._known.popitem(last=False)

    def _outcome_of(self, flight: _Flight) -> FlexAgent:
        """What the IAM call another check is making says (without a call of our own)."""
        if not flight.done.wait(self._timeout + 1.0):
            raise IamUnavailable("Twilio IAM did not answer in time")
        if flight.agent is not None:
            return flight.agent
        raise copy.copy(flight.error)  # a copy: one exception object raised in two threads
                                       # would share (and garble) its traceback

    def _cached(self, key: bytes) -> FlexAgent | None:
        """The agent for a token seen valid lately; raises TokenRefused for one seen invalid."""
        now = self._clock()
        with self._lock:
            refused = self._refused.get(key)
            if refused is not None:
                if now < refused[0]:
                    raise copy.copy(refused[1])
                del self._refused[key]
            entry = self._cache.get(key)
            if entry is None:
                return None
            deadline, agent = entry
            if now >= deadline:
                del self._cache[key]
                return None
            self._cache.move_to_end(key)
            return agent

    def _remember(self, key: bytes, agent: FlexAgent) -> None:
        deadline = min(agent.expires_at, self._clock() + self._max_cache_ttl)
        with self._lock:
            self._cache[key] = (deadline, agent)
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _remember_refusal(self, key: bytes, error: TokenRefused) -> None:
        # A new exception: the raised one holds its traceback, whose frames hold the token and
        # the whole IAM exchange; thousands of those would be megabytes (and secrets) kept.
        kept = TokenRefused(error.message, status=error.status)
        with self._lock:
            self._refused[key] = (self._clock() + self._negative_ttl, kept)
            self._refused.move_to_end(key)
            while len(self._refused) > self._cache_size:
                self._refused.popitem(last=False)

    def _ask_iam(self, token: str) -> FlexAgent:
        try:
            reply = call(self._transport, "Twilio IAM", "POST", self._validate_url, idempotent=True,
                         headers={"Authorization": self._authorization},
                         json_body={"token": token}, timeout=self._timeout)
            answer = reply.json() if reply.status == 200 else None
        except (Unreachable, NotJson) as error:
            raise IamUnavailable(error.message, status=error.status) from None
        refused = REFUSALS.get(reply.status)
        if refused is IamCredentialsRefused:
            # The operator's hint goes to the log; a client learns only that the server is at fault.
            log.error("Twilio IAM answered %d to the token check: check ACCOUNT_SID, AUTH_TOKEN and "
                      "TWILIO_IAM_URL", reply.status)
            raise IamCredentialsRefused("Twilio IAM refused this server's own credentials, so no Flex "
                                        "token can be checked", status=reply.status)
        if refused is TokenRefused:
            raise TokenRefused("The Flex token is not valid", status=reply.status)
        if not isinstance(answer, dict):
            raise IamUnavailable(f"Twilio IAM answered {reply.status} without a JSON object",
                                 status=reply.status)
        return self._agent_from(answer, token)

    def _agent_from(self, answer: dict, token: str) -> FlexAgent:
        identity = answer.get("realm_user_id")
        if answer.get("valid") is not True or not isinstance(identity, str) or not identity:
            raise TokenRefused(_rejection_message(answer.get("message"), token), status=200)
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
