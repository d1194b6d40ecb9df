"""A local stand-in for Twilio IAM's Flex token validation, plus demo sign-in endpoints.

`POST /v1/Accounts/{AccountSid}/Tokens/validate` with HTTP Basic AccountSid:AuthToken and
JSON `{"token": ...}` answers 200 in every case the credentials are right: `"valid": true`
with the agent's identity, or `"valid": false` with a Twilio error code and message (the
twilio-flex-token-validator package reads only `valid` and `message`). The `/demo/...`
endpoints let the demo panel sign an agent in without Flex; they allow any origin.
"""
from __future__ import annotations

import datetime
import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass

from .base import Handler, Request, Response, StandIn, json_response
from .twilio_api import (DEMO_ACCOUNT_SID, DEMO_AUTH_TOKEN, basic_auth_ok,
                                          twilio_error, unauthenticated)

_VALIDATE_PATH = re.compile(r"/v1/Accounts/(AC\w+)/Tokens/validate/?")
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
        "Access-Control-Allow-Headers": "Content-Type", "Access-Control-Max-Age": "600"}
INVALID = (20101, "Invalid Access Token")
EXPIRED = (20104, "Access Token expired or expiration date invalid")


@dataclass(frozen=True)
class FlexToken:
    realm_user_id: str
    roles: tuple[str, ...]
    expires_at: float


def flex_identity(realm_user_id: str) -> str:
    """Flex's chat/voice identity for a user: every non-alphanumeric char as _XX hex."""
    return re.sub(r"[^A-Za-z0-9]", lambda m: "_%02X" % ord(m.group()), realm_user_id)


def iso_utc(epoch_seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch_seconds, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class IamStandIn(StandIn):
    """Twilio IAM's Tokens/validate for one account, with tokens issued by the test."""

    server_name = "sfdcflex-iam-stand-in"

    def __init__(self, account_sid: str = DEMO_ACCOUNT_SID,
                 auth_token: str = DEMO_AUTH_TOKEN) -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.agents: dict[str, str] = {}
        self._tokens: dict[str, FlexToken] = {}
        self._token_lock = threading.Lock()

    def add_agent(self, realm_user_id: str, name: str) -> None:
        """A demo agent the panel can sign in as."""
        self.agents[realm_user_id] = name

    def issue_token(self, realm_user_id: str, *, ttl: float = 3600,
                    roles: tuple[str, ...] = ("agent",)) -> str:
        """A new opaque Flex token for `realm_user_id`, valid for `ttl` seconds (<= 0: expired)."""
        token = "eyJ" + secrets.token_urlsafe(90)
        with self._token_lock:
            self._tokens[token] = FlexToken(realm_user_id, tuple(roles), time.time() + ttl)
        return token

    def revoke_token(self, token: str) -> None:
        with self._token_lock:
            self._tokens.pop(token, None)

    def route(self, request: Request) -> tuple[str | None, Handler]:
        if _VALIDATE_PATH.fullmatch(request.path):
            return "validate", self._validate
        if request.path.rstrip("/") == "/demo/agents":
            return "demo_agents", self._demo_agents
        if request.path.rstrip("/") == "/demo/token":
            return "demo_token", self._demo_token
        return None, lambda request: twilio_error(
            404, 20404, f"The requested resource {request.path} was not found")

    def fault_response(self, name: str, status: int) -> Response:
        return twilio_error(status)

    def _validate(self, request: Request) -> Response:
        if request.method != "POST":
            return twilio_error(405)
        if not basic_auth_ok(request, self.account_sid, self.auth_token):
            return unauthenticated()
        if _VALIDATE_PATH.fullmatch(request.path).group(1) != self.account_sid:
            return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        body = request.json()
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str):
            return twilio_error(400, 20001, "Missing required parameter token in the post body")
        with self._token_lock:
            found = self._tokens.get(token)
        if found is None:
            return json_response(200, _refusal(*INVALID))
        if found.expires_at <= time.time():
            return json_response(200, _refusal(*EXPIRED))
        return json_response(200, {
            "valid": True, "code": 0, "message": None, "expiration": iso_utc(found.expires_at),
            "realm_user_id": found.realm_user_id, "identity": flex_identity(found.realm_user_id),
            "roles": list(found.roles), "worker_sid": _worker_sid(found.realm_user_id)})

    def _demo_agents(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(204, b"", headers=dict(CORS))
        agents = [{"realm_user_id": user, "name": name} for user, name in self.agents.items()]
        return json_response(200, {"agents": agents}, CORS)

    def _demo_token(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(204, b"", headers=dict(CORS))
        if request.method != "POST":
            return twilio_error(405, headers=CORS)
        body = request.json()
        user = body.get("realm_user_id") if isinstance(body, dict) else None
        if user not in self.agents:
            return twilio_error(404, 20404, "No such demo agent", CORS)
        token = self.issue_token(user)
        with self._token_lock:
            expiration = iso_utc(self._tokens[token].expires_at)
        return json_response(200, {"token": token, "expiration": expiration}, CORS)


def _refusal(code: int, message: str) -> dict:
    return {"valid": False, "code": code, "message": message, "expiration": None,
            "realm_user_id": None, "identity": None, "roles": None, "worker_sid": None}


def _worker_sid(realm_user_id: str) -> str:
    return "WK" + hashlib.sha256(realm_user_id.encode()).hexdigest()[:32]
