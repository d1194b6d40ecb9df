"""Twilio REST conventions shared by the IAM and Sync stand-ins: error body, Basic auth."""
from __future__ import annotations

import base64
import hmac

from .base import Request, Response, json_response

# Demo credentials, shaped like real ones (AC + 32 hex, 32 hex, IS + 32 hex).
DEMO_ACCOUNT_SID = "AC" + "de305d54" * 4
DEMO_AUTH_TOKEN = "0123456789abcdef" * 2
DEMO_SERVICE_SID = "IS" + "5a11c0de" * 4

# Twilio error codes for the statuses stand-ins produce (https://www.twilio.com/docs/errors).
STATUS_CODES = {400: 20001, 401: 20003, 404: 20404, 405: 20004, 429: 20429,
                500: 20500, 503: 20503}
STATUS_MESSAGES = {401: "Authenticate", 429: "Too Many Requests", 500: "Internal Server Error",
                   503: "Service Unavailable", 405: "Method not allowed"}


def twilio_error(status: int, code: int | None = None, message: str | None = None,
                 headers: dict[str, str] | None = None) -> Response:
    """Twilio's error body: {code, message, more_info, status}."""
    code = code or STATUS_CODES.get(status, 20000 + status)
    return json_response(status, {
        "code": code, "message": message or STATUS_MESSAGES.get(status, "Error"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}, headers)


def unauthenticated() -> Response:
    return twilio_error(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})


def basic_auth_ok(request: Request, account_sid: str, auth_token: str) -> bool:
    """True when the request carries HTTP Basic AccountSid:AuthToken."""
    scheme, _, encoded = request.header("authorization").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(encoded.strip()).decode("utf-8").partition(":")
    except ValueError:
        return False
    return (hmac.compare_digest(user.encode(), account_sid.encode())
            and hmac.compare_digest(password.encode(), auth_token.encode()))
