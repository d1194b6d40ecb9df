"""The Flex token validator's fixtures: the IAM stand-in, a clock the test moves, and a validator
of that stand-in on that clock."""
from __future__ import annotations

import pytest

from sfdcflex.clients.iam import FlexTokenValidator
from sfdcflex.demo.standins import IamStandIn
from tests.support.clocks import FakeClock
from tests.support.iam import ACCOUNT_SID, AUTH_TOKEN


@pytest.fixture
def iam():
    with IamStandIn(ACCOUNT_SID, AUTH_TOKEN) as standin:
        yield standin


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def validator(iam, clock):
    return FlexTokenValidator(iam.url, ACCOUNT_SID, AUTH_TOKEN, clock=clock, timeout=0.5)
