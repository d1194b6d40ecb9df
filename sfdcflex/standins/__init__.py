"""Local stand-ins for Salesforce, Twilio IAM and Twilio Sync that speak their wire formats.

Tests, the demo and the benchmark point the real clients at these servers on 127.0.0.1.
"""
from __future__ import annotations

from sfdcflex.standins.consent_page import submit_consent
from sfdcflex.standins.iam import IamStandIn
from sfdcflex.standins.salesforce import SalesforceStandIn
from sfdcflex.standins.sync import SyncStandIn

__all__ = ["IamStandIn", "SalesforceStandIn", "SyncStandIn", "submit_consent"]
