"""Runtime behaviour that mutation testing found unchecked (mutmut 3.8, issue 18): CORS, routes.

Each test names the surviving mutants it kills; the equivalent ones are listed in README's
reliability report.
"""
from __future__ import annotations

from conftest import FLEX_URL, call


def test_a_granted_origin_may_read_server_timing(crm):
    """CorsPolicy.headers mutant 36 (another header exposed): Flex's panel reads Server-Timing."""
    answer = call(crm.url, "POST", "/get-user", body={"Token": "not-a-token"}, headers={"Origin": FLEX_URL})
    assert answer.headers["Access-Control-Allow-Origin"] == FLEX_URL
    assert answer.headers["Access-Control-Expose-Headers"] == "Server-Timing"
    assert "Server-Timing" in answer.headers
    refused = call(crm.url, "POST", "/get-user", body={"Token": "x"}, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Expose-Headers" not in refused.headers
