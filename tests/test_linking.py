"""Linking an agent's Salesforce user: the OAuth flow over real HTTP, and every way it must refuse."""
from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

from tests.support.crm import FLEX_URL
from tests.support.http import call
from sfdcflex.oauth_state import StateSigner
from sfdcflex.demo.standins.salesforce import submit_consent


def _stored(crm) -> dict:
    return json.loads(crm.store_path.read_text())["agents"]


def test_whole_link_flow_then_get_user(crm):
    page = crm.link("alice@example.com")
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    html = page.body.decode()
    assert "Salesforce connected" in html and "Alice Agent" in html
    assert f'postMessage(message, "{crm.url}")' in html and '"*"' not in html
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert set(_stored(crm)) == {"alice@example.com"}
    user = crm.post("/get-user", {"Token": crm.token("alice@example.com")})
    assert user.status == 200
    assert user.json()["sfdc_username"] == "alice@example.com"
    assert user.json()["display_name"] == "Alice Agent"


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


def test_declining_on_the_login_page_links_nothing(crm):
    answer = crm.post("/auth", {"Token": crm.token("alice@example.com"), "origin": crm.url})
    location = submit_consent(answer.json()["authorize_url"], "alice@example.com", allow=False)
    assert "error=access_denied" in location
    page = call(crm.url, "GET", location[len(crm.url):])
    assert page.status == 403 and b"You pressed Deny on Salesforce" in page.body
    # Salesforce's own words are the spec's, not the agent's: they stay out of the page.
    assert b"end-user denied" not in page.body
    assert '"link_failed"' in page.body.decode()
    assert not crm.store_path.exists() or _stored(crm) == {}


def test_another_oauth_error_is_named_for_an_administrator(crm):
    page = call(crm.url, "GET", "/oauth-callback?error=OAUTH_APP_BLOCKED&error_description=this+app+is+blocked")
    assert page.status == 403 and b"OAUTH_APP_BLOCKED: this app is blocked" in page.body
    assert b"administrator" in page.body and b"You pressed Deny" not in page.body


def test_a_different_salesforce_user_is_refused_and_the_earlier_link_survives(crm):
    assert crm.link("alice@example.com").status == 200
    before = _stored(crm)["alice@example.com"]
    refused = crm.link("alice@example.com", sfdc_username="mallory.other@example.com")
    assert refused.status == 403
    assert b"identity_mismatch" in refused.body and b"sign in to Salesforce as alice@example.com" in refused.body
    assert b"ask your Salesforce administrator" in refused.body  # the user may not exist yet
    assert _stored(crm)["alice@example.com"] == before
    assert crm.post("/get-user", {"Token": crm.token("alice@example.com")}).status == 200


def test_a_user_of_another_org_is_refused(crm):
    crm.iam.add_agent("eve@example.com", "Eve")
    refused = crm.link("eve@example.com")
    assert refused.status == 403 and b"wrong_org" in refused.body
    assert not crm.store_path.exists() or "eve@example.com" not in _stored(crm)


def test_forged_malformed_and_foreign_states_are_refused(crm):
    answer = crm.post("/auth", {"Token": crm.token("alice@example.com")})
    location = submit_consent(answer.json()["authorize_url"], "alice@example.com")
    code = parse_qs(urlsplit(location).query)["code"][0]
    forged = StateSigner(b"x" * 48).sign("alice@example.com")
    assert call(crm.url, "GET", f"/oauth-callback?code={code}&state={forged}").status == 403
    assert call(crm.url, "GET", f"/oauth-callback?code={code}&state=garbage").status == 400
    expired = StateSigner(b"s" * 48, clock=lambda: 0).sign("alice@example.com")
    assert call(crm.url, "GET", f"/oauth-callback?code={code}&state={expired}").status == 403
    # Bob relays Alice's code and state: the state names another Flex user.
    state = parse_qs(urlsplit(location).query)["state"][0]
    relayed = crm.post("/oauth-callback", {"Token": crm.token("bob@example.com"), "code": code, "state": state})
    assert relayed.status == 403 and relayed.json()["error"] == "state_mismatch"
    assert not crm.store_path.exists() or _stored(crm) == {}


def test_a_code_from_another_flow_fails_pkce(crm):
    first = crm.post("/auth", {"Token": crm.token("alice@example.com")}).json()["authorize_url"]
    second = crm.post("/auth", {"Token": crm.token("alice@example.com")}).json()["authorize_url"]
    code = parse_qs(urlsplit(submit_consent(first, "alice@example.com")).query)["code"][0]
    other_state = parse_qs(urlsplit(second).query)["state"][0]
    page = call(crm.url, "GET", f"/oauth-callback?code={code}&state={other_state}")
    assert page.status == 400 and b"invalid_code" in page.body


def test_original_plugin_relay_path_links_with_the_flex_token(crm):
    crm.sf.require_pkce = False  # the original plugin builds its own authorize URL, without PKCE
    redirect = FLEX_URL + "/salesforce-oauth"
    authorize = (f"{crm.sf.url}/services/oauth2/authorize?response_type=code&client_id={crm.sf.client_id}"
                 f"&redirect_uri={redirect}&state=plugin")
    code = parse_qs(urlsplit(submit_consent(authorize, "bob@example.com")).query)["code"][0]
    answer = crm.post("/get-access-token", {"Token": crm.token("bob@example.com"), "code": code})
    assert answer.status == 200, answer.body
    assert answer.json() == {"linked": True, "sfdc_username": "bob@example.com", "display_name": "Bob Agent"}
    assert crm.post("/get-username", {"Token": crm.token("bob@example.com")}).json()["sfdc_username"] == "bob@example.com"


def _original_popup_code(crm, sfdc_username: str) -> str:
    """The original plugin's popup: GET /auth with no Token, Salesforce's page, back to Flex."""
    popup = call(crm.url, "GET", "/auth", headers={"Accept": "text/html,*/*"})
    assert popup.status == 302, popup.body
    back = urlsplit(submit_consent(popup.headers["Location"], sfdc_username))
    assert f"{back.scheme}://{back.netloc}{back.path}" == FLEX_URL + "/salesforce-oauth"
    return parse_qs(back.query)["code"][0]


def test_without_original_plugin_login_auth_needs_a_token(crm):
    popup = call(crm.url, "GET", "/auth", headers={"Accept": "text/html,*/*"})
    assert popup.status == 400 and popup.json()["error"] == "missing_token"


def test_original_plugin_login_redirects_without_state_or_pkce(crm_factory):
    crm = crm_factory(ORIGINAL_PLUGIN_LOGIN="true")
    popup = call(crm.url, "GET", "/auth", headers={"Accept": "text/html,*/*"})
    assert popup.status == 302 and popup.headers["Cache-Control"] == "no-store"
    query = {k: v[0] for k, v in parse_qs(urlsplit(popup.headers["Location"]).query).items()}
    assert query == {"response_type": "code", "client_id": crm.sf.client_id,
                     "redirect_uri": FLEX_URL + "/salesforce-oauth", "scope": "api refresh_token"}
    # With a Token, sfdcflex's own flow is unchanged: signed state and PKCE.
    own = crm.post("/auth", {"Token": crm.token("alice@example.com")}).json()["authorize_url"]
    assert "code_challenge=" in own and "state=" in own


def test_original_plugin_login_fails_where_salesforce_requires_pkce(crm_factory):
    crm = crm_factory(ORIGINAL_PLUGIN_LOGIN="true")
    popup = call(crm.url, "GET", "/auth", headers={"Accept": "text/html,*/*"})
    authorize = urlsplit(popup.headers["Location"])
    refused = call(f"{authorize.scheme}://{authorize.netloc}", "GET", f"{authorize.path}?{authorize.query}")
    # Salesforce sends the popup back at once: the connected app requires a code challenge.
    assert refused.status == 302 and "error=invalid_request" in refused.headers["Location"]


def test_original_plugin_login_keeps_every_identity_check(crm_factory):
    crm = crm_factory(ORIGINAL_PLUGIN_LOGIN="true")
    crm.sf.require_pkce = False   # the connected app must not require PKCE for this flow

    def relay(identity: str, code: str):
        return crm.post("/get-access-token", {"Token": crm.token(identity), "code": code})

    assert relay("alice@example.com", _original_popup_code(crm, "alice@example.com")).status == 200
    before = _stored(crm)["alice@example.com"]
    # Another Salesforce user's code relayed by Alice: refused, revoked, her link untouched.
    revokes = crm.sf.calls["revoke"]
    refused = relay("alice@example.com", _original_popup_code(crm, "mallory.other@example.com"))
    assert refused.status == 403 and refused.json()["error"] == "identity_mismatch"
    assert crm.sf.calls["revoke"] == revokes + 1
    assert _stored(crm)["alice@example.com"] == before
    # A user of another org: refused, nothing stored for Eve.
    crm.iam.add_agent("eve@example.com", "Eve")
    foreign = relay("eve@example.com", _original_popup_code(crm, "eve@example.com"))
    assert foreign.status == 403 and foreign.json()["error"] == "wrong_org"
    assert "eve@example.com" not in _stored(crm)
    # A code is good once: replaying the one Alice used links nothing new.
    code = _original_popup_code(crm, "alice@example.com")
    assert relay("alice@example.com", code).status == 200
    replay = relay("alice@example.com", code)
    assert replay.status == 400 and replay.json()["error"] == "invalid_code"


def test_unlink_revokes_deletes_and_forgets(crm):
    crm.link("alice@example.com")
    token = crm.token("alice@example.com")
    assert crm.post("/get-contact", {"Token": token, "phone": "+14155550101"}).status == 200
    revokes = crm.sf.calls["revoke"]
    answer = crm.post("/unlink", {"Token": token})
    assert answer.json() == {"unlinked": True}
    assert crm.sf.calls["revoke"] == revokes + 1
    assert "alice@example.com" not in _stored(crm)
    gone = crm.post("/get-contact", {"Token": token, "phone": "+14155550101"})
    assert gone.status == 404 and gone.json()["error"] == "not_linked"
    assert crm.post("/unlink", {"Token": token}).json() == {"unlinked": False}


def test_no_secret_reaches_a_response_or_a_log_line(crm, caplog):
    caplog.set_level("DEBUG")
    bodies = [crm.link("alice@example.com").body]
    token = crm.token("alice@example.com")
    for path, body in [("/get-user", {}), ("/get-contact", {"phone": "+14155550101"}),
                       ("/get-contact", {"phone": "+19995550100"}), ("/auth", {})]:
        answer = crm.post(path, {"Token": token, **body})
        bodies.append(answer.body + str(answer.headers).encode())
    crm.sf.expire_access_tokens()
    bodies.append(crm.post("/get-contact", {"Token": token, "phone": "415 555 0101"}).body)
    stored = _stored(crm)["alice@example.com"]
    secrets = [stored["access_token"], stored["refresh_token"], crm.sf.client_secret, crm.iam.auth_token]
    secrets += [t for t in crm.sf.refresh_log]
    everything = b"".join(bodies).decode("utf-8", "replace") + caplog.text
    for secret in secrets:
        assert secret not in everything
    assert re.search(r"200 POST /get-contact", caplog.text)
