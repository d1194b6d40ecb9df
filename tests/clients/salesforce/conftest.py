"""The Salesforce client's fixtures: the stand-in with its user, a client of it and the user's
tokens (the wire), and a client answered in process by a scripted Sender (its own logic)."""
from __future__ import annotations

import pytest

from sfdcflex.clients.salesforce import SalesforceClient
from sfdcflex.demo.standins import SalesforceStandIn
from tests.support.salesforce import CLIENT_ID, CLIENT_SECRET, ORG, USERNAME
from tests.support.senders import ScriptedSender


@pytest.fixture
def sf():
    with SalesforceStandIn() as standin:
        standin.add_user(USERNAME, "Ada Lovelace")
        yield standin


@pytest.fixture
def client(sf):
    return SalesforceClient(sf.url, CLIENT_ID, CLIENT_SECRET, timeout=2.0)


@pytest.fixture
def tokens(sf):
    return sf.issue_tokens(USERNAME)


@pytest.fixture
def token(tokens):
    return tokens["access_token"]


@pytest.fixture
def sender():
    return ScriptedSender()


@pytest.fixture
def scripted(sender):
    """A client whose every call is answered by `sender`, in process."""
    return SalesforceClient(ORG, CLIENT_ID, CLIENT_SECRET, transport=sender)
