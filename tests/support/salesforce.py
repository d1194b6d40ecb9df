"""What the Salesforce client's tests share: the connected app's credentials, the org, a user, and
answers planted in the Salesforce stand-in."""
from __future__ import annotations

import json

from sfdcflex.demo.standins import SalesforceStandIn

CLIENT_ID, CLIENT_SECRET = "demo-client-id", "demo-client-secret"
REDIRECT_URI = "http://127.0.0.1:3000/oauth-callback"
USERNAME = "ada@example.com"
RECORD_ID = "003000000000001AAA"
ORG = "https://example.my.salesforce.com"


def answers_next(sf: SalesforceStandIn, endpoint: str, status: int, body: object) -> None:
    """The stand-in's next call of `endpoint` answers `status` with this JSON body."""
    sf.fail_next(endpoint, status=status, body=json.dumps(body).encode(), content_type="application/json")


def rest_error(code: str, message: str, **more) -> list[dict]:
    """A REST error body in Salesforce's array shape."""
    return [{"errorCode": code, "message": message, **more}]
