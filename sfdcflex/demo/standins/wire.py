"""Salesforce's wire shapes, as the stand-in answers them: REST and OAuth error bodies, the
REST datetime format, and the OAuth redirect back to the app."""
from __future__ import annotations

import datetime
import urllib.parse

from .base import Response, json_response
from .oauth_grants import OAuthError

HTML = "text/html;charset=UTF-8"
NO_STORE = {"Cache-Control": "no-cache,must-revalidate,max-age=0,no-store,private"}


def rest_error(status: int, error_code: str, message: str) -> Response:
    """Salesforce REST's error body: a JSON array of {message, errorCode}."""
    return json_response(status, [{"message": message, "errorCode": error_code}])


def oauth_error(error: OAuthError) -> Response:
    """The token endpoint's error body (RFC 6749 §5.2), never cached."""
    return json_response(error.status, {"error": error.error,
                                        "error_description": error.description}, NO_STORE)


def salesforce_datetime(moment: datetime.datetime) -> str:
    """Salesforce's REST datetime format, e.g. 2024-05-14T09:21:07.000+0000."""
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def redirect_back(params: dict[str, str], answer: dict[str, str]) -> Response:
    """302 to the app's redirect_uri with `answer` and the state, as Salesforce redirects."""
    if params.get("state") is not None:
        answer = {**answer, "state": params["state"]}
    redirect_uri = params["redirect_uri"]
    separator = "&" if "?" in redirect_uri else "?"
    location = redirect_uri + separator + urllib.parse.urlencode(answer)
    return Response(302, b"", HTML, {"Location": location, **NO_STORE})
