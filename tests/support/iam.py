"""What the Flex token validator's tests share: the Twilio account, IAM's address, an answer planted
in the IAM stand-in, and a check's refusal."""
from __future__ import annotations

import json

import pytest

from sfdcflex.clients.errors import TokenRefused
from sfdcflex.clients.iam import FlexTokenValidator
from sfdcflex.demo.standins import IamStandIn

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "iam-test-auth-token"
IAM = "https://iam.example.com"


def answers_next(iam: IamStandIn, answer: dict) -> None:
    """IAM's next validate call answers 200 with this JSON body."""
    iam.fail_next("validate", status=200, body=json.dumps(answer).encode(), content_type="application/json")


def refusal(validator: FlexTokenValidator, token: str) -> TokenRefused:
    """The TokenRefused that checking `token` raised (the test fails if the check passed)."""
    with pytest.raises(TokenRefused) as raised:
        validator.validate(token)
    return raised.value
