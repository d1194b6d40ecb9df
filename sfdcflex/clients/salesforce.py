"""Salesforce OAuth (web-server flow with PKCE) and the REST query/search calls, over `transport.call`.

Wire facts used here, from Salesforce's OAuth and REST API documentation: the token endpoint
answers errors as `{"error", "error_description"}`; REST errors are arrays of
`{"message", "errorCode"}`; an expired access token is a 401 `INVALID_SESSION_ID` on REST and a
403 `Bad_OAuth_Token` (or a 401) on `/services/oauth2/userinfo`; an org over its daily API
allowance answers 403 `REQUEST_LIMIT_EXCEEDED`.
"""
from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING

from ..runtime.errors import BadGateway, BadRequest, HTTPError, NotFound
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


def _rest_errors(reply: Reply) -> list[tuple[str, str]]:
    """(errorCode, message) pairs from a REST error body; empty when it is not Salesforce's array shape."""
    try:
        body = reply.json()
    except BadGateway:
        return []
    items = body if isinstance(body, list) else [body]
    return [(_short(item.get("errorCode", "")), _short(item.get("message", "")))
            for item in items if isinstance(item, dict)]


def _raise_for_rest(reply: Reply) -> None:
    """Map a non-2xx REST answer to SessionExpired, RequestLimitExceeded or SalesforceError."""
    errors = _rest_errors(reply)
    codes = {code for code, _ in errors}
    if reply.status == 401 and "INVALID_SESSION_ID" in codes:
        raise SessionExpired("The Salesforce session expired")
    if reply.status == 403 and "REQUEST_LIMIT_EXCEEDED" in codes:
        raise RequestLimitExceeded("Salesforce refused the call: "
                                   "the org's daily API request limit is exceeded")
    if errors:
        code, message = errors[0]
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

    def authorize_url(self, redirect_uri: str, state: str, code_challenge: str,
                      scope: str = "api refresh_token") -> str:
        """The Salesforce consent page URL for the web-server flow with PKCE S256."""
        query = urllib.parse.urlencode({
            "response_type": "code", "client_id": self._client_id, "redirect_uri": redirect_uri,
            "state": state, "scope": scope, "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        })
        return f"{self.login_url}/services/oauth2/authorize?{query}"

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
