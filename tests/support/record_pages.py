"""A person's browser at the Salesforce stand-in: its login form and the record pages behind it."""
from __future__ import annotations

from urllib.parse import urlencode

from sfdcflex.demo.standins import SalesforceStandIn

from .http import call


def log_in(sf: SalesforceStandIn, username: str = "alice@sfdcflex.demo",
           start_url: str = "/") -> tuple[str, str]:
    """Post the login form; return the session cookie pair and where it redirects."""
    form = urlencode({"username": username, "startURL": start_url}).encode()
    answer = call(sf.url, "POST", "/", body=form,
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status == 303, answer.status
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    return cookie.split(";")[0], answer.headers["Location"]


def page(sf: SalesforceStandIn, path: str, cookie: str = "") -> tuple[int, dict, str]:
    """GET a page as the browser would: (status, lower-cased headers, text)."""
    answer = call(sf.url, "GET", path, headers={"Cookie": cookie} if cookie else {})
    return answer.status, {name.lower(): value for name, value in answer.headers.items()}, answer.body.decode()
