"""A local stand-in for Salesforce: OAuth 2.0 web server flow with PKCE, and REST query/search.

It serves the login host and the instance at once (`url` is both SFDC_LOGIN_URL and
SFDC_INSTANCE_URL) and answers with Salesforce's own paths, statuses and bodies: OAuth
errors as `{"error", "error_description"}`, REST errors as `[{"message", "errorCode"}]`,
the identity endpoints' bad-token answer as a plain-text 403 `Bad_OAuth_Token`.
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import re
import urllib.parse

from .base import Handler, Request, Response, StandIn, json_response
from .consent_page import render_error_page, render_login_page, submit_consent
from .oauth_grants import Grant, GrantBook, OAuthError
from .record_pages import RecordPages
from .soql import QueryError, parse_query, parse_search
from .sobject_writes import RecordWrites
from .sobjects import Org
from .wire import HTML, NO_STORE, oauth_error, redirect_back, rest_error, salesforce_datetime

__all__ = ["SalesforceStandIn", "submit_consent"]

BAD_LOGIN = ("Please check your username and password. If you still can't log in, "
             "contact your Salesforce administrator.")
_REST_PATH = re.compile(r"/services/data/v(\d+\.\d+)/(query|search)/?")
_IDENTITY_PATH = re.compile(r"/id/(\w{15,18})/(\w{15,18})/?")
_SOBJECT_PATH = re.compile(r"/services/data/v(\d+\.\d+)/sobjects/(\w+)(?:/(\w+))?/?")
_FAULT_CODES = {401: "INVALID_SESSION_ID", 403: "REQUEST_LIMIT_EXCEEDED",
                404: "NOT_FOUND", 503: "SERVER_UNAVAILABLE"}


class SalesforceStandIn(StandIn):
    """Salesforce's login host and instance for tests and the demo, on 127.0.0.1."""

    server_name = "sfdcflex-salesforce-stand-in"
    app_name = "Twilio Flex CRM Integration"

    def __init__(self, org_id: str = "00D5e000000AbCdEAF", client_id: str = "demo-client-id",
                 client_secret: str = "demo-client-secret", api_version: str = "62.0",
                 require_pkce: bool = True) -> None:
        super().__init__()
        self.org_id = org_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.api_version = api_version
        self.request_limit_exceeded = False
        # A connected app's "Require PKCE" setting. sfdcflex's own flow always sends a challenge;
        # the original plugin's flow (ORIGINAL_PLUGIN_LOGIN) sends none, so it needs this off.
        # A code issued with a challenge needs its verifier either way.
        self.require_pkce = require_pkce
        self.org = Org(api_version)
        self.grants = GrantBook(org_id)
        self.record_pages = RecordPages(self.org)
        self._epoch = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=2)
        self._writes = 0
        self.writes = RecordWrites(self.org, lambda: self._stamps(None))
        self._presented: list[str] = []

    # -- seeding ------------------------------------------------------------------------------
    def add_user(self, username: str, display_name: str, *, org_id: str | None = None,
                 user_id: str | None = None, email: str | None = None) -> dict:
        """Add a Salesforce user (optionally of another org) and return its summary."""
        first, _, last = display_name.partition(" ")
        fields = {"Username": username, "Name": display_name, "FirstName": first or None,
                  "LastName": last or first, "Email": email or username, "IsActive": True,
                  "OrgId": org_id or self.org_id, **self._stamps(None)}
        record_id = self.org.insert("User", fields, record_id=user_id)
        return self._user_summary(self.org.get("User", record_id))

    def add_account(self, name: str, *, type: str | None = None,
                    account_number: str | None = None, sla: str | None = None,
                    priority: str | None = None) -> str:
        """Add an Account with the fields the contact card shows; return its id."""
        return self.org.insert("Account", {
            "Name": name, "Type": type, "AccountNumber": account_number, "SLA__c": sla,
            "CustomerPriority__c": priority, "Phone": None, **self._stamps(None)})

    def add_contact(self, name: str, *, account_id: str | None = None, title: str | None = None,
                    phone: str | None = None, mobile_phone: str | None = None,
                    email: str | None = None, indexed: bool = True,
                    last_modified: datetime.datetime | str | None = None) -> str:
        """Add a Contact; `indexed=False` hides it from SOSL (the search index lags)."""
        first, _, last = name.partition(" ")
        return self.org.insert("Contact", {
            "Name": name, "FirstName": first if last else None, "LastName": last or first,
            "Title": title, "Phone": phone, "MobilePhone": mobile_phone, "Email": email,
            "AccountId": account_id, **self._stamps(last_modified)}, indexed=indexed)

    def add_lead(self, name: str, company: str, *, title: str | None = None,
                 phone: str | None = None, email: str | None = None,
                 last_modified: datetime.datetime | str | None = None) -> str:
        """Add an open Lead (a prospect, not yet a Contact); return its id."""
        first, _, last = name.partition(" ")
        return self.org.insert("Lead", {
            "Name": name, "FirstName": first if last else None, "LastName": last or first,
            "Title": title, "Company": company, "Phone": phone, "MobilePhone": None,
            "Email": email, "Status": "Open - Not Contacted", **self._stamps(last_modified)})

    def _stamps(self, last_modified: datetime.datetime | str | None) -> dict:
        # Later additions are more recent unless told otherwise, so "newest wins" is testable.
        self._writes += 1
        moment = self._epoch + datetime.timedelta(minutes=self._writes)
        if isinstance(last_modified, datetime.datetime):
            modified = salesforce_datetime(last_modified)
        else:
            modified = last_modified or salesforce_datetime(moment)
        return {"CreatedDate": salesforce_datetime(moment), "LastModifiedDate": modified}

    # -- controls for tests ---------------------------------------------------------------------
    @property
    def refresh_log(self) -> list[str]:
        """Refresh tokens the token endpoint acted on (rotated or refused), in order."""
        return list(self.grants.refresh_log)

    @property
    def refresh_presented(self) -> list[str]:
        """Every refresh token that arrived at the token endpoint, dropped or answered, in order."""
        with self._lock:
            return list(self._presented)

    def observe(self, name: str, request: Request) -> None:
        if name == "token" and request.method == "POST":
            form = request.form()
            if form.get("grant_type") == "refresh_token":
                with self._lock:
                    self._presented.append(form.get("refresh_token", ""))

    def live_grants(self, username: str) -> int:
        """How many grants of `username` are not revoked (each link or refresh chain is one)."""
        user = self._user_by_username(username)
        return 0 if user is None else self.grants.live_grants(user["Id"])

    def expire_access_tokens(self) -> None:
        """Every current access token now answers 401 INVALID_SESSION_ID."""
        self.grants.expire_access_tokens()

    def issue_tokens(self, username: str, scope: str = "api refresh_token") -> dict:
        """A token response as if `username` had completed the OAuth flow."""
        user = self._user_by_username(username)
        if user is None:
            raise KeyError(username)
        grant, access, refresh = self.grants.open_grant(user["Id"], scope)
        return self._token_body(grant, access, refresh)

    # -- routing --------------------------------------------------------------------------------
    def route(self, request: Request) -> tuple[str | None, Handler]:
        path = request.path
        fixed = {"/services/oauth2/authorize": ("authorize", self._authorize),
                 "/services/oauth2/token": ("token", self._token),
                 "/services/oauth2/revoke": ("revoke", self._revoke),
                 "/services/oauth2/userinfo": ("userinfo", self._userinfo)}
        if path.rstrip("/") in fixed:
            return fixed[path.rstrip("/")]
        if _IDENTITY_PATH.fullmatch(path):
            return "identity", self._identity
        page = self.record_pages.route(path)
        if page is not None:
            return page
        match = _REST_PATH.fullmatch(path)
        if match and match[1] == self.api_version:
            return match[2], self._query if match[2] == "query" else self._search
        match = _SOBJECT_PATH.fullmatch(path)
        if match and match[1] == self.api_version:
            writes = {"POST": "sobject-create", "PATCH": "sobject-update"}
            return writes.get(request.method, "sobject-read"), self._sobject
        return None, self._not_found

    def fault_response(self, name: str, status: int) -> Response:
        if name in ("authorize", "token", "revoke"):
            return json_response(status, {"error": "unknown_error",
                                          "error_description": "retry your request"})
        if name in ("userinfo", "identity"):
            return Response(status, b"Service Unavailable", "text/plain;charset=UTF-8")
        return rest_error(status, _FAULT_CODES.get(status, "UNKNOWN_EXCEPTION"),
                          "An unexpected error occurred. Please include this ErrorId if you "
                          "contact support: 1234567890-12345 (-1234567890)")

    def _not_found(self, request: Request) -> Response:
        return rest_error(404, "NOT_FOUND", "The requested resource does not exist")

    # -- OAuth: authorize -----------------------------------------------------------------------
    def _authorize(self, request: Request) -> Response:
        params = request.query if request.method in ("GET", "HEAD") else request.form()
        refused = self._refuse_authorize(params)
        if refused is not None:
            return refused
        if request.method in ("GET", "HEAD"):
            return self._login_page(params)
        if params.get("decision") != "allow":
            return redirect_back(params, {"error": "access_denied",
                                           "error_description": "end-user denied authorization"})
        if not params.get("username"):
            return self._login_page(params, "Choose a Salesforce user to log in as.")
        user = self._user_by_username(params["username"])
        if user is None:
            return self._login_page(params, BAD_LOGIN)
        code = self.grants.issue_code(user["Id"], params["client_id"], params["redirect_uri"],
                                      params.get("code_challenge") or None,
                                      params.get("scope") or "api refresh_token")
        # Logging in here also starts the browser's session, so record pages know the user.
        return self.record_pages.sign_in(redirect_back(params, {"code": code}), user["Id"])

    def _refuse_authorize(self, params: dict[str, str]) -> Response | None:
        """Why Salesforce would not show the login page for these parameters, if it would not."""
        if params.get("client_id") != self.client_id:
            return Response(400, render_error_page("invalid_client_id", "client identifier invalid"),
                            HTML, dict(NO_STORE))
        redirect_uri = params.get("redirect_uri", "")
        if urllib.parse.urlsplit(redirect_uri).scheme not in ("http", "https"):
            return Response(400, render_error_page("redirect_uri_mismatch",
                                                   "redirect_uri must match configuration"),
                            HTML, dict(NO_STORE))
        if params.get("response_type") != "code":
            return redirect_back(params, {"error": "unsupported_response_type",
                                           "error_description": "response type not supported"})
        if self.require_pkce and not params.get("code_challenge"):
            return redirect_back(params, {"error": "invalid_request",
                                           "error_description": "missing required code challenge"})
        if params.get("code_challenge_method", "S256") != "S256":
            return redirect_back(params, {"error": "invalid_request",
                                           "error_description": "invalid code challenge method"})
        return None

    def _login_page(self, params: dict[str, str], error: str | None = None) -> Response:
        users = [self._user_summary(user) for user in self.org.all("User")]
        return Response(200, render_login_page(params, users, self.app_name, error), HTML,
                        dict(NO_STORE))

    # -- OAuth: token, revoke ------------------------------------------------------------------
    def _token(self, request: Request) -> Response:
        if request.method != "POST":
            return oauth_error(OAuthError(400, "invalid_request", "must use HTTP POST"))
        form = request.form()
        try:
            self._check_client(request, form)
            grant_type = form.get("grant_type")
            if grant_type == "authorization_code":
                grant, access, refresh = self.grants.redeem_code(
                    form.get("code", ""), form.get("client_id") or self.client_id,
                    form.get("redirect_uri", ""), form.get("code_verifier"))
            elif grant_type == "refresh_token":
                grant, access, refresh = self.grants.rotate(form.get("refresh_token", ""))
            else:
                raise OAuthError(400, "unsupported_grant_type", "grant type not supported")
        except OAuthError as error:
            return oauth_error(error)
        return json_response(200, self._token_body(grant, access, refresh), NO_STORE)

    def _check_client(self, request: Request, form: dict[str, str]) -> None:
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        authorization = request.header("authorization")
        if authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:].strip()).decode("utf-8")
            except ValueError:
                decoded = ":"
            client_id, _, client_secret = decoded.partition(":")
            form["client_id"] = client_id
        if client_id != self.client_id:
            raise OAuthError(400, "invalid_client_id", "client identifier invalid")
        if not hmac.compare_digest((client_secret or "").encode(), self.client_secret.encode()):
            raise OAuthError(401, "invalid_client", "invalid client credentials")

    def _token_body(self, grant: Grant, access: str, refresh: str | None) -> dict:
        user = self.org.get("User", grant.user_id) or {}
        identity = f"{self.url}/id/{user.get('OrgId', self.org_id)}/{grant.user_id}"
        issued_at = str(int(datetime.datetime.now(datetime.timezone.utc).timestamp() * 1000))
        # Salesforce signs id + issued_at with the client secret so clients can check both.
        mac = hmac.new(self.client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256)
        body = {"access_token": access}
        if refresh is not None:
            body["refresh_token"] = refresh
        body.update(signature=base64.b64encode(mac.digest()).decode(), scope=grant.scope,
                    instance_url=self.url, id=identity, token_type="Bearer", issued_at=issued_at)
        return body

    def _revoke(self, request: Request) -> Response:
        token = (request.form() if request.method == "POST" else request.query).get("token", "")
        if not self.grants.revoke(token):
            return oauth_error(OAuthError(400, "unsupported_token_type",
                                          "this token type is not supported"))
        return Response(200, b"", "text/html;charset=UTF-8", dict(NO_STORE))

    # -- identity ----------------------------------------------------------------------------
    def _bearer_user(self, request: Request) -> dict | None:
        scheme, _, token = request.header("authorization").partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or not token.strip():
            return None
        user_id = self.grants.user_for(token.strip())
        return self.org.get("User", user_id) if user_id else None

    def _userinfo(self, request: Request) -> Response:
        user = self._bearer_user(request)
        if user is None:
            # The identity service answers a bad token with a plain-text 403, not REST's 401.
            return Response(403, b"Bad_OAuth_Token", "text/plain;charset=UTF-8")
        org_id = user["OrgId"]
        return json_response(200, {
            "sub": f"{self.url}/id/{org_id}/{user['Id']}", "user_id": user["Id"],
            "organization_id": org_id, "preferred_username": user["Username"],
            "nickname": user["Username"].split("@")[0], "name": user["Name"],
            "email": user["Email"], "email_verified": True, "given_name": user["FirstName"],
            "family_name": user["LastName"], "zoneinfo": "America/Los_Angeles",
            "profile": f"{self.url}/{user['Id']}", "address": {}, "urls": self._urls(user),
            "active": True, "user_type": "STANDARD", "language": "en_US", "locale": "en_US",
            "utcOffset": -28800000, "updated_at": user["LastModifiedDate"],
            "is_app_installed": True})

    def _identity(self, request: Request) -> Response:
        # The Identity URL's error codes: 403 Missing_OAuth_Token, Bad_OAuth_Token, Wrong_Org
        # (the token is of another org than the user asked for), 404 Bad_Id.
        if not request.header("authorization").partition(" ")[2].strip():
            return Response(403, b"Missing_OAuth_Token", "text/plain;charset=UTF-8")
        user = self._bearer_user(request)
        if user is None:
            return Response(403, b"Bad_OAuth_Token", "text/plain;charset=UTF-8")
        org_id, user_id = _IDENTITY_PATH.fullmatch(request.path).groups()
        # Either form of the id works: 18 characters, or the case-sensitive first 15.
        wanted = next((u for u in self.org.all("User") if u["Id"][:15] == user_id[:15]), None)
        if wanted is None or wanted["OrgId"][:15] != org_id[:15]:
            return Response(404, b"Bad_Id", "text/plain;charset=UTF-8")
        if wanted["OrgId"][:15] != user["OrgId"][:15]:
            return Response(403, b"Wrong_Org", "text/plain;charset=UTF-8")
        return json_response(200, {
            "id": f"{self.url}/id/{wanted['OrgId']}/{wanted['Id']}", "asserted_user":
            wanted["Id"] == user["Id"], "user_id": wanted["Id"],
            "organization_id": wanted["OrgId"], "username": wanted["Username"],
            "nick_name": wanted["Username"].split("@")[0], "display_name": wanted["Name"],
            "email": wanted["Email"], "email_verified": True, "first_name": wanted["FirstName"],
            "last_name": wanted["LastName"], "timezone": "America/Los_Angeles",
            "active": True, "user_type": "STANDARD", "language": "en_US", "locale": "en_US",
            "utcOffset": -28800000, "last_modified_date": wanted["LastModifiedDate"],
            "is_app_installed": True, "urls": self._urls(wanted)})

    def _urls(self, user: dict) -> dict:
        rest = f"{self.url}/services/data/v{{version}}/"
        return {"rest": rest, "sobjects": rest + "sobjects/", "search": rest + "search/",
                "query": rest + "query/", "profile": f"{self.url}/{user['Id']}"}

    # -- REST query and search ------------------------------------------------------------------
    def _rest_refusal(self, request: Request, allowed: str = "HEAD,GET") -> Response | None:
        if request.method not in allowed.split(","):
            return rest_error(405, "METHOD_NOT_ALLOWED",
                              f"HTTP Method '{request.method}' not allowed. Allowed are {allowed}")
        if self._bearer_user(request) is None:
            return rest_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        if self.request_limit_exceeded:
            return rest_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        return None

    def _sobject(self, request: Request) -> Response:
        refused = self._rest_refusal(request, "HEAD,GET,POST,PATCH")
        _, sobject, record_id = _SOBJECT_PATH.fullmatch(request.path).groups()
        return refused or self.writes.answer(request.method, request.body, self._bearer_user(request),
                                             sobject, record_id)

    def _query(self, request: Request) -> Response:
        refused = self._rest_refusal(request)
        if refused is not None:
            return refused
        try:
            query = parse_query(request.query.get("q", ""))
            self.writes.check_readable(self._bearer_user(request), [query.sobject])
            records = self.org.query(query, self.writes.hidden_from(self._bearer_user(request)))
        except QueryError as error:
            return rest_error(400, error.error_code, error.message)
        return json_response(200, {"totalSize": len(records), "done": True, "records": records},
                             {"Sforce-Limit-Info": "api-usage=1/15000"})

    def _search(self, request: Request) -> Response:
        refused = self._rest_refusal(request)
        if refused is not None:
            return refused
        try:
            search = parse_search(request.query.get("q", ""))
            self.writes.check_readable(self._bearer_user(request), [p.sobject for p in search.returning])
            records = self.org.search(search, self.writes.hidden_from(self._bearer_user(request)))
        except QueryError as error:
            return rest_error(400, error.error_code, error.message)
        return json_response(200, {"searchRecords": records},
                             {"Sforce-Limit-Info": "api-usage=1/15000"})

    # -- users ------------------------------------------------------------------------------------
    def _user_by_username(self, username: str) -> dict | None:
        wanted = username.strip().lower()
        return next((user for user in self.org.all("User")
                     if user["Username"].lower() == wanted), None)

    @staticmethod
    def _user_summary(user: dict | None) -> dict:
        user = user or {}
        return {"user_id": user.get("Id"), "username": user.get("Username"),
                "display_name": user.get("Name"), "org_id": user.get("OrgId"),
                "email": user.get("Email")}
