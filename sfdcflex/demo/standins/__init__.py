"""Local stand-ins for Salesforce, Twilio IAM and Twilio Sync that speak their wire formats.

Tests, the demo and the benchmark point the real clients at these servers on 127.0.0.1.
"""
from __future__ import annotations

from .consent_page import submit_consent
from .iam import IamStandIn
from .salesforce import SalesforceStandIn
from .sync import SyncStandIn

__all__ = ["IamStandIn", "SalesforceStandIn", "SyncStandIn", "submit_consent"]
