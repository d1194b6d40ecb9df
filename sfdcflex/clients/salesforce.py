"""Salesforce OAuth (web-server flow with PKCE) and the REST query/search calls, over `transport.call`.

Wire facts used here, from Salesforce's OAuth and REST API documentation: the token endpoint
answers errors as `{"error", "error_description"}`; REST errors are arrays of
`{"message", "errorCode"}`; an expired access token is a 401 `INVALID_SESSION_ID` on REST and a
403 `Bad_OAuth_Token` (or a 401) on `/services/oauth2/userinfo`; an org over its daily API
allowance answers 403 `REQUEST_LIMIT_EXCEEDED`. Writes (REST API guide, "Create a Record",
"Update a Record", "Status Codes and Error Responses"): POST /sobjects/{type} answers 201
`{"id", "success", "errors"}`, PATCH /sobjects/{type}/{id} answers 204 with no body, and a refused
write is a 400 (or 403/404) with the same array, each item naming its `fields`.
"""
from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING

from ..runtime.errors import BadGateway, BadRequest, Forbidden, HTTPError, NotFound
from .transport import Reply, call, check_upstream_url, default_transport

if TYPE_CHECKING:
    from .transport import Sender

SERVICE = "Salesforce"
MAX_QUERY_PAGES = 5
MAX_MESSAGE_CHARS = 300
SOQL_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r",
                "\t": "\\t", "\b": "\\b", "\f": "\\f"}
SOSL_RESERVED = set("?&|!{}[]()^~*:\\\"'+-")


class SessionExpired(HTTPError):
    """The access token expired or was revoked (401 INVALID_SESSION_ID): refresh once, then retry."""

    status, code = 502, "salesforce_session_expired"


class InvalidGrant(NotFound):
    """The refresh token was refused (invalid_grant): the grant is dead and the user must consent again.

    Its code is the integration's `not_linked`, so an agent sees the same answer whether the
    keeper translated it or not.
    """

    code = "not_linked"


class SalesforceError(BadGateway):
    """Salesforce answered an error; the message carries its errorCode and message."""

    code = "salesforce_error"


class RequestLimitExceeded(SalesforceError):
    """The org used up its daily API request allowance (403 REQUEST_LIMIT_EXCEEDED)."""

    code = "salesforce_request_limit"


class RecordRejected(HTTPError):
    """Salesforce refused the record's data: a validation rule, a required field, a bad value.

    422: the request was well formed, and the org's own rules refuse what it says; the agent
    can fix it (the message is Salesforce's, e.g. a validation rule's error text).
    """

    status, code = 422, "salesforce_rejected"


class RecordNotFound(NotFound):
    """The record, or one a write points to, does not exist or was deleted."""

    code = "salesforce_record_not_found"


class InsufficientAccess(Forbidden):
    """The agent's Salesforce user may not do this (object permission, sharing, read-only record).

    403, not 502: Salesforce works; the agent's own permissions forbid it, so an administrator
    must grant them (README, "Salesforce permissions").
    """

    code = "salesforce_insufficient_access"


# errorCode -> the error the agent can act on (REST API guide, "Status Codes and Error Responses";
# SOAP API guide, "StatusCode"); any other code is Salesforce failing: a 502.
REFUSALS: dict[str, type[HTTPError]] = {
    "REQUIRED_FIELD_MISSING": RecordRejected,
    "FIELD_CUSTOM_VALIDATION_EXCEPTION": RecordRejected,
    "FIELD_INTEGRITY_EXCEPTION": RecordRejected,
    "STRING_TOO_LONG": RecordRejected,
    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST": RecordRejected,
    "INVALID_FIELD_FOR_INSERT_UPDATE": RecordRejected,
    "INVALID_CROSS_REFERENCE_KEY": RecordNotFound,
    "ENTITY_IS_DELETED": RecordNotFound,
    "INSUFFICIENT_ACCESS_OR_READONLY": InsufficientAccess,
    "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY": InsufficientAccess,
}


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
    except BadGateway:
        return []
    items = body if isinstance(body, list) else [body]
    return [(_short(item.get("errorCode", "")), _short(item.get("message", "")), _fields_of(item))
            for item in items if isinstance(item, dict)]


def _fields_of(item: dict) -> tuple[str, ...]:
    fields = item.get("fields")
    return tuple(_short(f)[:80] for f in fields[:5]) if isinstance(fields, list) else ()


def _raise_for_rest(reply: Reply) -> None:
    """Map a non-2xx REST answer to SessionExpired, RequestLimitExceeded, a refusal or SalesforceError."""
    errors = _rest_errors(reply)
    codes = {code for code, _, _ in errors}
    if reply.status == 401 and "INVALID_SESSION_ID" in codes:
        raise SessionExpired("The Salesforce session expired")
    if reply.status == 403 and "REQUEST_LIMIT_EXCEEDED" in codes:
        raise RequestLimitExceeded("Salesforce refused the call: "
                                   "the org's daily API request limit is exceeded")
    refusal = next(((REFUSALS[code], code, message, fields) for code, message, fields in errors
                    if code in REFUSALS and 400 <= reply.status < 500), None)
    if refusal is not None:
        kind, code, message, fields = refusal
        named = f" (fields: {', '.join(fields)})" if fields else ""
        raise kind(f"Salesforce refused it: {code}: {message}{named}")
    if errors:
        code, message, _ = errors[0]
        raise SalesforceError(f"Salesforce answered {reply.status} {code or 'error'}: {message}")
    raise SalesforceError(f"Salesforce answered {reply.status} with an unexpected body")


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
        except BadGateway as error:
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
            raise SalesforceError(f"Salesforce could not revoke the token: it answered {reply.status}")

    def userinfo(self, access_token: str) -> dict:
        """The token's user as OpenID Connect userinfo (user_id, organization_id, preferred_username...)."""
        reply = self._call("GET", f"{self.instance_url}/services/oauth2/userinfo",
                           headers={"Authorization": f"Bearer {access_token}"})
        # userinfo lives under /services/oauth2, not /services/data: an expired or revoked token
        # gets 403 with the plain-text body "Bad_OAuth_Token" (some orgs answer 401 instead).
        if reply.status == 401 or (reply.status == 403 and b"Bad_OAuth_Token" in reply.body):
            raise SessionExpired("The Salesforce session expired")
        if not 200 <= reply.status < 300:
            _raise_for_rest(reply)
        return _json_object(reply)

    # --- REST --------------------------------------------------------------------------------

    def _rest_get(self, access_token: str, path_and_query: str) -> object:
        reply = self._call("GET", f"{self.instance_url}{path_and_query}",
                           headers={"Authorization": f"Bearer {access_token}"})
        if not 200 <= reply.status < 300:
            _raise_for_rest(reply)
        try:
            return reply.json()
        except BadGateway as error:
            raise SalesforceError(error.message) from None

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
            _raise_for_rest(reply)
        answer = _json_object(reply)
        record_id = answer.get("id")
        if answer.get("success") is False or not isinstance(record_id, str) or not record_id:
            raise SalesforceError("Salesforce's create answer has no record id")
        return record_id

    def update(self, access_token: str, sobject: str, record_id: str, fields: dict) -> None:
        """Change fields of one record (PATCH /sobjects/{type}/{id}; Salesforce answers 204)."""
        reply = self._call("PATCH", self._sobject_url(sobject, record_id), json_body=fields,
                           headers={"Authorization": f"Bearer {access_token}"})
        if not 200 <= reply.status < 300:
            _raise_for_rest(reply)

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
    except BadGateway:
        raise SalesforceError(f"Salesforce answered {reply.status} with a body that is not JSON") from None
    if not isinstance(answer, dict):
        raise SalesforceError(f"Salesforce answered {reply.status} with JSON that is not an object")
    return answer


def _token_error(status: int, answer: dict, refreshing: bool) -> HTTPError:
    """Map the token endpoint's OAuth error (RFC 6749 section 5.2) to the error the caller can act on."""
    error = _short(answer.get("error", ""))
    description = _short(answer.get("error_description", ""))
    if error == "invalid_grant" and refreshing:
        return InvalidGrant("Salesforce no longer accepts this agent's link "
                            f"({description or 'invalid_grant'}): connect Salesforce again")
    if error == "invalid_grant":
        return BadRequest("Salesforce refused the authorization code (used or expired): "
                          "connect Salesforce again", code="invalid_code")
    if error in ("invalid_client", "invalid_client_id", "invalid_client_credentials"):
        return SalesforceError("Salesforce refused this app's credentials: "
                               "check SFDC_CLIENT_ID and SFDC_CLIENT_SECRET")
    if error == "redirect_uri_mismatch":
        return SalesforceError("Salesforce refused the redirect URI: the connected app's callback URL "
                               "must match PUBLIC_URL's oauth-callback")
    return SalesforceError(f"Salesforce's token endpoint answered {status} {error or 'error'}: {description}")
