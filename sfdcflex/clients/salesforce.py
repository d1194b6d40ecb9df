"""Salesforce OAuth (web-server flow with PKCE) and the REST query/search calls, over `transport.call`.

Wire facts used here, from Salesforce's OAuth and REST API documentation: the token endpoint
answers errors as `{"error", "error_description"}`; REST errors are arrays of
`{"message", "errorCode"}`; an expired access token is a 401 `INVALID_SESSION_ID` on REST and a
403 `Bad_OAuth_Token` (or a 401) on `/services/oauth2/userinfo`; an org over its daily API
allowance answers 403 `REQUEST_LIMIT_EXCEEDED`. Writes (REST API guide, "Create a Record",
"Update a Record", "Status Codes and Error Responses"): POST /sobjects/{type} answers 201
`{"id", "success", "errors"}`, PATCH /sobjects/{type}/{id} answers 204 with no body, and a refused
write is a 400 (or 403/404) with the same array, each item naming its `fields`.

Every failure is one of errors.py's Salesforce family, chosen for REST answers from REST_ERRORS;
what an agent is answered for it is the integration's choice (sfdcflex/errors.py).
"""
from __future__ import annotations

import logging
import re
import urllib.parse
from typing import TYPE_CHECKING

from .errors import (CodeRefused, InsufficientAccess, InvalidGrant, NotJson, RecordNotFound,
                     RecordRejected, RequestLimitExceeded, SalesforceError, SessionExpired, Unreachable)
from .transport import Reply, call, check_upstream_url, default_transport

if TYPE_CHECKING:
    from .transport import Sender

log = logging.getLogger("sfdcflex")
SERVICE = "Salesforce"
# A record id: 15 case-sensitive letters and digits, or 18 with the case checksum.
RECORD_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
MAX_QUERY_PAGES = 5
MAX_MESSAGE_CHARS = 300
SOQL_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r",
                "\t": "\\t", "\b": "\\b", "\f": "\\f"}
SOSL_RESERVED = set("?&|!{}[]()^~*:\\\"'+-")

# A REST answer's errorCode -> the statuses it comes with and the error it is (REST API guide,
# "Status Codes and Error Responses"; SOAP API guide, "StatusCode"). Any other error answer is
# Salesforce failing: a SalesforceError.
_CLIENT_ERRORS = range(400, 500)
REST_ERRORS: dict[str, tuple[range | tuple[int, ...], type[SalesforceError]]] = {
    "INVALID_SESSION_ID": ((401,), SessionExpired),
    "REQUEST_LIMIT_EXCEEDED": ((403,), RequestLimitExceeded),
    "REQUIRED_FIELD_MISSING": (_CLIENT_ERRORS, RecordRejected),
    "FIELD_CUSTOM_VALIDATION_EXCEPTION": (_CLIENT_ERRORS, RecordRejected),
    "FIELD_INTEGRITY_EXCEPTION": (_CLIENT_ERRORS, RecordRejected),
    "STRING_TOO_LONG": (_CLIENT_ERRORS, RecordRejected),
    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST": (_CLIENT_ERRORS, RecordRejected),
    "INVALID_FIELD_FOR_INSERT_UPDATE": (_CLIENT_ERRORS, RecordRejected),
    "INVALID_CROSS_REFERENCE_KEY": (_CLIENT_ERRORS, RecordNotFound),
    "ENTITY_IS_DELETED": (_CLIENT_ERRORS, RecordNotFound),
    "INSUFFICIENT_ACCESS_OR_READONLY": (_CLIENT_ERRORS, InsufficientAccess),
    "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY": (_CLIENT_ERRORS, InsufficientAccess),
}
# These speak of the whole call, not of one record: they win over a refusal in the same answer.
_WHOLE_CALL = {SessionExpired: "The Salesforce session expired",
               RequestLimitExceeded: "Salesforce refused the call: the org's daily API request limit is exceeded"}


def soql_quote(value: str) -> str:
    """A single-quoted SOQL string literal with Salesforce's backslash escapes applied."""
    if not isinstance(value, str):
        raise TypeError("soql_quote takes a str")
    return "'" + "".join(SOQL_ESCAPES.get(ch, ch) for ch in value) + "'"


def sosl_escape(term: str) -> str:
    """The term with every SOSL reserved character backslash-escaped, for use inside FIND {...}."""
    if not isinstance(term, str):
        raise TypeError("sosl_escape takes a str")
    return "".join("\\" + ch if ch in SOSL_RESERVED else ch for ch in term)


def _short(text: object) -> str:
    return str(text).strip()[:MAX_MESSAGE_CHARS]


def _rest_errors(reply: Reply) -> list[tuple[str, str, tuple[str, ...]]]:
    """(errorCode, message, fields) from a REST error body; empty when it is not Salesforce's array shape."""
    try:
        body = reply.json()
    except NotJson:
        return []
    items = body if isinstance(body, list) else [body]
    return [(_short(item.get("errorCode", "")), _short(item.get("message", "")), _fields_of(item))
            for item in items if isinstance(item, dict)]


def _fields_of(item: dict) -> tuple[str, ...]:
    fields = item.get("fields")
    return tuple(_short(f)[:80] for f in fields[:5]) if isinstance(fields, list) else ()


def _rest_error(reply: Reply) -> SalesforceError:
    """The error a non-2xx REST answer is, from REST_ERRORS; SalesforceError for any other."""
    errors = _rest_errors(reply)
    known = [(REST_ERRORS[code][1], code, message, fields) for code, message, fields in errors
             if code in REST_ERRORS and reply.status in REST_ERRORS[code][0]]
    known.sort(key=lambda match: match[0] not in _WHOLE_CALL)   # stable: else the answer's order
    if known:
        kind, code, message, fields = known[0]
        if kind in _WHOLE_CALL:
            return kind(_WHOLE_CALL[kind], status=reply.status, error_code=code)
        named = f" (fields: {', '.join(fields)})" if fields else ""
        return kind(f"Salesforce refused it: {code}: {message}{named}", status=reply.status, error_code=code)
    if errors:
        code, message, _ = errors[0]
        return SalesforceError(f"Salesforce answered {reply.status} {code or 'error'}: {message}",
                               status=reply.status, error_code=code or None)
    return SalesforceError(f"Salesforce answered {reply.status} with an unexpected body", status=reply.status)


class SalesforceClient:
    """A thin Salesforce client: OAuth web-server flow with PKCE, token refresh/revoke, SOQL and SOSL."""

    def __init__(self, instance_url: str, client_id: str, client_secret: str, *,
                 login_url: str | None = None, api_version: str = "62.0",
                 transport: Sender | None = None, timeout: float = 8.0) -> None:
        self.instance_url = check_upstream_url("SFDC_INSTANCE_URL", instance_url)
        self.login_url = check_upstream_url("SFDC_LOGIN_URL", login_url) if login_url else self.instance_url
        self.api_version = api_version
        self._client_id = client_id
        self._client_secret = client_secret
        self._transport = transport or default_transport()
        self._timeout = timeout

    def _call(self, method: str, url: str, **kwargs) -> Reply:
        try:
            return call(self._transport, SERVICE, method, url, timeout=self._timeout, **kwargs)
        except Unreachable as error:
            raise SalesforceError(error.message) from None

    # --- OAuth -------------------------------------------------------------------------------

    def authorize_url(self, redirect_uri: str, state: str | None = None,
                      code_challenge: str | None = None, scope: str = "api refresh_token") -> str:
        """The Salesforce consent page URL for the web-server flow, with PKCE S256 when given a challenge.

        Without state and challenge it is the URL the original plugin's `auth` built
        (ORIGINAL_PLUGIN_LOGIN), which a connected app accepts only if it does not require PKCE.
        """
        params = {"response_type": "code", "client_id": self._client_id, "redirect_uri": redirect_uri}
        if state is not None:
            params["state"] = state
        params["scope"] = scope
        if code_challenge is not None:
            params.update(code_challenge=code_challenge, code_challenge_method="S256")
        return f"{self.login_url}/services/oauth2/authorize?{urllib.parse.urlencode(params)}"

    def exchange_code(self, code: str, redirect_uri: str, code_verifier: str | None) -> dict:
        """Trade an authorization code (plus PKCE verifier) for tokens; a used or expired code is a 400."""
        form = {"grant_type": "authorization_code", "code": code, "client_id": self._client_id,
                "client_secret": self._client_secret, "redirect_uri": redirect_uri}
        if code_verifier is not None:  # None only for a code the original plugin relays (no PKCE)
            form["code_verifier"] = code_verifier
        answer = self._token_request(form, refreshing=False)
        if not isinstance(answer.get("refresh_token"), str) or not answer["refresh_token"]:
            raise SalesforceError("Salesforce gave no refresh token: allow the refresh_token scope "
                                  "in the connected app's OAuth policies")
        return answer

    def refresh(self, refresh_token: str) -> dict:
        """New tokens from a refresh token; Salesforce may rotate it, so keep any refresh_token returned."""
        return self._token_request({
            "grant_type": "refresh_token", "refresh_token": refresh_token,
            "client_id": self._client_id, "client_secret": self._client_secret,
        }, refreshing=True)

    def _token_request(self, form: dict[str, str], *, refreshing: bool) -> dict:
        reply = self._call("POST", f"{self.login_url}/services/oauth2/token", form=form)
        answer = _json_object(reply)
        if 200 <= reply.status < 300:
            if not all(isinstance(answer.get(key), str) and answer[key]
                       for key in ("access_token", "id", "instance_url")):
                raise SalesforceError("Salesforce's token answer lacks access_token, id or instance_url")
            return answer
        raise _token_error(reply.status, answer, refreshing)

    def revoke(self, token: str) -> None:
        """Revoke a token (and, for a refresh token, its access tokens); an already dead token is fine."""
        reply = self._call("POST", f"{self.login_url}/services/oauth2/revoke", form={"token": token})
        # Salesforce answers 400 invalid_token / unsupported_token_type when the token is already gone.
        if reply.status >= 500 or reply.status not in (200, 400):
            raise SalesforceError(f"Salesforce could not revoke the token: it answered {reply.status}",
                                  status=reply.status)

    def userinfo(self, access_token: str) -> dict:
        """The token's user as OpenID Connect userinfo (user_id, organization_id, preferred_username...)."""
        reply = self._call("GET", f"{self.instance_url}/services/oauth2/userinfo",
                           headers={"Authorization": f"Bearer {access_token}"})
        # userinfo lives under /services/oauth2, not /services/data: an expired or revoked token
        # gets 403 with the plain-text body "Bad_OAuth_Token" (some orgs answer 401 instead).
        if reply.status == 401 or (reply.status == 403 and b"Bad_OAuth_Token" in reply.body):
            raise SessionExpired(_WHOLE_CALL[SessionExpired], status=reply.status)
        if not 200 <= reply.status < 300:
            raise _rest_error(reply)
        return _json_object(reply)

    # --- REST --------------------------------------------------------------------------------

    def _rest_get(self, access_token: str, path_and_query: str) -> object:
        reply = self._call("GET", f"{self.instance_url}{path_and_query}",
                           headers={"Authorization": f"Bearer {access_token}"})
        if not 200 <= reply.status < 300:
            raise _rest_error(reply)
        try:
            return reply.json()
        except NotJson as error:
            raise SalesforceError(error.message, status=reply.status) from None

    def query(self, access_token: str, soql: str) -> list[dict]:
        """The records a SOQL query returns, following nextRecordsUrl for at most a few pages."""
        path = f"/services/data/v{self.api_version}/query?" + urllib.parse.urlencode({"q": soql})
        records: list[dict] = []
        for _ in range(MAX_QUERY_PAGES):
            page = self._rest_get(access_token, path)
            if not isinstance(page, dict) or not isinstance(page.get("records"), list):
                raise SalesforceError("Salesforce's query answer has no records list")
            records.extend(r for r in page["records"] if isinstance(r, dict))
            next_url = page.get("nextRecordsUrl")
            # nextRecordsUrl is a path on the same instance (/services/data/vXX.X/query/01g...-2000).
            if page.get("done", True) or not isinstance(next_url, str) \
                    or not next_url.startswith("/services/"):
                break
            path = next_url
        return records

    def create(self, access_token: str, sobject: str, fields: dict) -> str:
        """Create one record (POST /sobjects/{type}) and return its id; refusals raise their error class."""
        reply = self._call("POST", self._sobject_url(sobject), json_body=fields,
                           headers={"Authorization": f"Bearer {access_token}"})
        if not 200 <= reply.status < 300:
            raise _rest_error(reply)
        answer = _json_object(reply)
        record_id = answer.get("id")
        if answer.get("success") is False or not isinstance(record_id, str) or not record_id:
            raise SalesforceError("Salesforce's create answer has no record id")
        if not RECORD_ID.fullmatch(record_id):   # it goes into URLs: never a "/" or a "?"
            raise SalesforceError("Salesforce's create answer has a record id that is not one")
        return record_id

    def update(self, access_token: str, sobject: str, record_id: str, fields: dict) -> None:
        """Change fields of one record (PATCH /sobjects/{type}/{id}; Salesforce answers 204)."""
        reply = self._call("PATCH", self._sobject_url(sobject, record_id), json_body=fields,
                           headers={"Authorization": f"Bearer {access_token}"})
        if not 200 <= reply.status < 300:
            raise _rest_error(reply)

    def record_url(self, sobject: str, record_id: str) -> str:
        """The record's page in Lightning Experience, for a link in the agent's panel."""
        return f"{self.instance_url}/lightning/r/{sobject}/{record_id}/view"

    def _sobject_url(self, sobject: str, record_id: str | None = None) -> str:
        # Both parts come from our own code, never from a request: an sObject name and a checked id.
        if not sobject.isidentifier() or (record_id is not None and not record_id.isalnum()):
            raise ValueError("an sObject name and an alphanumeric record id are required")
        tail = f"/{record_id}" if record_id is not None else ""
        return f"{self.instance_url}/services/data/v{self.api_version}/sobjects/{sobject}{tail}"

    def search(self, access_token: str, sosl: str) -> list[dict]:
        """The searchRecords a SOSL search returns (older API versions answer a bare list)."""
        path = f"/services/data/v{self.api_version}/search?" + urllib.parse.urlencode({"q": sosl})
        answer = self._rest_get(access_token, path)
        records = answer.get("searchRecords") if isinstance(answer, dict) else answer
        if not isinstance(records, list):
            raise SalesforceError("Salesforce's search answer has no searchRecords list")
        return [r for r in records if isinstance(r, dict)]


def _json_object(reply: Reply) -> dict:
    try:
        answer = reply.json()
    except NotJson:
        raise SalesforceError(f"Salesforce answered {reply.status} with a body that is not JSON",
                              status=reply.status) from None
    if not isinstance(answer, dict):
        raise SalesforceError(f"Salesforce answered {reply.status} with JSON that is not an object",
                              status=reply.status)
    return answer


def _token_error(status: int, answer: dict, refreshing: bool) -> SalesforceError:
    """Map the token endpoint's OAuth error (RFC 6749 section 5.2) to the error the caller can act on."""
    error = _short(answer.get("error", ""))
    description = _short(answer.get("error_description", ""))
    said = {"status": status, "error_code": error or None}
    if error == "invalid_grant" and refreshing:
        return InvalidGrant("Salesforce no longer accepts this agent's link "
                            f"({description or 'invalid_grant'}): connect Salesforce again", **said)
    if error == "invalid_grant":
        return CodeRefused("Salesforce refused the authorization code (used or expired): "
                           "connect Salesforce again", **said)
    # Which settings to check is for the operator's log: an answer tells a client only that the
    # server is at fault, never how it is configured.
    if error in ("invalid_client", "invalid_client_id", "invalid_client_credentials"):
        log.error("Salesforce's token endpoint answered %s: check SFDC_CLIENT_ID and SFDC_CLIENT_SECRET",
                  error)
        return SalesforceError("Salesforce refused this server's own app credentials", **said)
    if error == "redirect_uri_mismatch":
        log.error("Salesforce's token endpoint answered redirect_uri_mismatch: the connected app's "
                  "callback URL must be PUBLIC_URL's /oauth-callback")
        return SalesforceError("Salesforce refused this server's redirect URI", **said)
    return SalesforceError(f"Salesforce's token endpoint answered {status} {error or 'error'}: {description}",
                           **said)
