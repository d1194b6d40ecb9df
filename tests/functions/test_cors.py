"""CORS on the product's functions, end to end: only FLEX_INSTANCE_URL's origin, compared as an origin
(scheme, host without case, port), gets a grant; nothing that merely contains or starts with it."""
from __future__ import annotations

import pytest

from tests.support.crm import FLEX_URL, crm_on_own_standins
from tests.support.http import call


@pytest.fixture(scope="module")
def crm(tmp_path_factory):
    """One server for every origin: each asks only a preflight and a refused lookup."""
    with crm_on_own_standins(tmp_path_factory.mktemp("cors")) as made:
        yield made


@pytest.mark.parametrize("origin,granted", [
    (FLEX_URL, True),
    ("HTTPS://FLEX.Example.com", True),                # hosts compare without case (RFC 3986)
    ("https://flex.example.com:443", True),            # the default port is the same origin
    ("https://flex.example.com.evil.example", False),  # merely starts with an allowed origin
    ("https://flex.example.com@evil.example", False),  # userinfo: the host is evil.example
    ("https://flex.example.comevil.example", False),
    ("https://evil.example/https://flex.example.com", False),
    ("https://evil.example?https://flex.example.com", False),
    ("http://flex.example.com", False),                # another scheme is another origin
    ("https://flex.example.com:8443", False),          # another port too
    ("https://example.com", False),
    ("https://sub.flex.example.com", False),
    ("null", False),
    ("", False),
])
def test_only_allowed_origins_get_a_cors_grant_from_the_product(crm, origin, granted):
    """Guards against a prefix test (origin.startswith(allowed)) in CorsPolicy.allows."""
    for method, path, body in (("POST", "/get-user", {"Token": "not-a-token"}), ("OPTIONS", "/get-user", None)):
        answer = call(crm.url, method, path, body=body,
                      headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
        assert answer.status in (204, 403)
        assert answer.headers.get("Access-Control-Allow-Origin") == (origin if granted else None)
        assert "Origin" in answer.headers.get("Vary", "")
