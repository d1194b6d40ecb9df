"""auth end to end over the stand-ins: the authorize URL (PKCE S256, a signed state naming the agent
and their panel), the popup's redirect, and the Flex token it needs."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from sfdcflex.oauth_state import StateSigner
from tests.support.crm import STATE_SECRET
from tests.support.http import call

ALICE = "alice@example.com"


def test_authorize_url_uses_pkce_s256_and_a_signed_state(crm):
    answer = crm.post("/auth", {"Token": crm.token("alice@example.com")})
    url = urlsplit(answer.json()["authorize_url"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert url.path == "/services/oauth2/authorize"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["redirect_uri"] == crm.url + "/oauth-callback"
    assert query["scope"] == "api refresh_token"
    assert "alice" not in query["code_challenge"]
    assert StateSigner(b"s" * 48).verify(query["state"]).identity == "alice@example.com"


def test_auth_opened_in_a_browser_popup_redirects(crm):
    token = crm.token("alice@example.com")
    answer = call(crm.url, "GET", f"/auth?Token={token}", headers={"Accept": "text/html,*/*"})
    assert answer.status == 302
    assert answer.headers["Location"].startswith(crm.sf.url + "/services/oauth2/authorize?")


def test_flex_token_missing_invalid_or_iam_down(crm):
    assert crm.post("/auth", {}).status == 400
    assert crm.post("/auth", {}).json()["error"] == "missing_token"
    bad = crm.post("/auth", {"Token": "not-a-flex-token"})
    assert bad.status == 403 and bad.json()["error"] == "invalid_token"
    crm.iam.fail_next("validate", status=503, count=3)
    down = crm.post("/auth", {"Token": crm.token("bob@example.com")})
    assert down.status == 502 and down.json()["error"] == "iam_unavailable"


def test_without_original_plugin_login_auth_needs_a_token(crm):
    popup = call(crm.url, "GET", "/auth", headers={"Accept": "text/html,*/*"})
    assert popup.status == 400 and popup.json()["error"] == "missing_token"


@pytest.mark.parametrize("suffix,kept", [("/", True), ("//", True), ("X", False), (" ", False), ("\n", False)])
def test_auth_keeps_an_allowed_origin_without_its_trailing_slashes_and_nothing_else(shared_crm, suffix, kept):
    """/auth keeps an allowed origin without its trailing slashes, and nothing that only looks like it."""
    start = shared_crm.post("/auth", {"Token": shared_crm.token(ALICE), "origin": shared_crm.url + suffix})
    state = parse_qs(urlsplit(start.json()["authorize_url"]).query)["state"][0]
    assert StateSigner(STATE_SECRET.encode()).verify(state).origin == (shared_crm.url if kept else None)
