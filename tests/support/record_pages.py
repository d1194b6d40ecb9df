"""The Salesforce stand-in's pages for a person: log in, and fetch a page with the session cookie."""
from __future__ import annotations

from sfdcflex.demo.standins import SalesforceStandIn
from tests.support.standins import call


def log_in(sf: SalesforceStandIn, username: str = "alice@sfdcflex.demo",
           start_url: str = "/") -> tuple[str, str]:
    """Post the login form; return the session cookie pair and where it redirects."""
    status, headers, _ = call(sf.url + "/", "POST", form={"username": username, "startURL": start_url})
    assert status == 303, status
    assert "HttpOnly" in headers["set-cookie"] and "SameSite=Lax" in headers["set-cookie"]
    return headers["set-cookie"].split(";")[0], headers["location"]


def page(sf: SalesforceStandIn, path: str, cookie: str = "") -> tuple[int, dict, str]:
    status, headers, body = call(sf.url + path, headers={"Cookie": cookie} if cookie else {})
    return status, headers, body.decode()
