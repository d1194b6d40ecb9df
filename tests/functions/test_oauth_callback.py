"""oauth-callback end to end over the stand-ins: the browser's redirect back and the panel's relay
link the agent; a forged, truncated, malformed, reused or foreign state and a bad or refused code
link nothing. (Whose Salesforce user may be linked: test_link_identity.py.)"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from sfdcflex.demo.standins.salesforce import submit_consent
from sfdcflex.oauth_state import StateSigner
from tests.support.crm import STATE_SECRET
from tests.support.http import call, refusal

ALICE = "alice@example.com"


def _signed(payload: bytes) -> str:
    """A state of these claims, signed with the server's secret."""
    mac = hmac.new(STATE_SECRET.encode(), payload, hashlib.sha256).digest()
    encode = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()  # noqa: E731
    return f"{encode(payload)}.{encode(mac)}"


# --- the flow, and where the popup reports -----------------------------------------------------


def test_whole_link_flow_then_get_user(crm):
    page = crm.link("alice@example.com")
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    html = page.body.decode()
    assert "Salesforce connected" in html and "Alice Agent" in html
    assert f'postMessage(message, "{crm.url}")' in html and '"*"' not in html
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert set(crm.links()) == {"alice@example.com"}
    user = crm.post("/get-user", {"Token": crm.token("alice@example.com")})
    assert user.status == 200
    assert user.json()["sfdc_username"] == "alice@example.com"
    assert user.json()["display_name"] == "Alice Agent"


def test_declining_on_the_login_page_links_nothing(crm):
    answer = crm.post("/auth", {"Token": crm.token("alice@example.com"), "origin": crm.url})
    location = submit_consent(answer.json()["authorize_url"], "alice@example.com", allow=False)
    assert "error=access_denied" in location
    page = call(crm.url, "GET", location[len(crm.url):])
    assert page.status == 403 and b"You pressed Deny on Salesforce" in page.body
    # Salesforce's own words are the spec's, not the agent's: they stay out of the page.
    assert b"end-user denied" not in page.body
    assert '"link_failed"' in page.body.decode()
    assert not crm.store_path.exists() or crm.links() == {}


def test_a_declined_popup_reports_to_the_panel_that_started_it(shared_crm):
    """The failure page posts to the panel that started the link, not to FLEX_INSTANCE_URL."""
    start = shared_crm.post("/auth", {"Token": shared_crm.token(ALICE), "origin": shared_crm.url})
    location = submit_consent(start.json()["authorize_url"], ALICE, allow=False)
    page = call(shared_crm.url, "GET", location[len(shared_crm.url):])
    assert page.status == 403 and '"link_failed"' in page.body.decode()
    assert f'postMessage(message, "{shared_crm.url}")' in page.body.decode()


def test_a_failure_without_a_valid_state_posts_nothing_and_may_not_be_framed(shared_crm):
    """Anyone can send a browser to the callback with words of their choosing: without a valid
    state the page shows them but tells no opener (not even FLEX_INSTANCE_URL's) anything, and
    no page may frame it."""
    for query in ("error=access_denied&error_description=x",
                  "error=OAUTH_APP_BLOCKED&error_description=Call+1-800-FAKE+to+reconnect",
                  "error=OAUTH_APP_BLOCKED&error_description=x&state=forged.state"):
        page = call(shared_crm.url, "GET", f"/oauth-callback?{query}")
        assert page.status in (400, 403), (query, page.body)
        assert b"Salesforce not connected" in page.body and b"postMessage" not in page.body, query
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    start = shared_crm.post("/auth", {"Token": shared_crm.token(ALICE), "origin": shared_crm.url})
    valid_state = parse_qs(urlsplit(start.json()["authorize_url"]).query)["state"][0]
    page = call(shared_crm.url, "GET", f"/oauth-callback?error=access_denied&state={quote(valid_state)}")
    assert f'postMessage(message, "{shared_crm.url}")' in page.body.decode()


def test_another_oauth_error_is_named_for_an_administrator(crm):
    page = call(crm.url, "GET", "/oauth-callback?error=OAUTH_APP_BLOCKED&error_description=this+app+is+blocked")
    assert page.status == 403 and b"OAUTH_APP_BLOCKED: this app is blocked" in page.body
    assert b"administrator" in page.body and b"You pressed Deny" not in page.body


def test_an_allowed_origin_in_the_state_is_where_the_popup_reports(crm):
    code, state = crm.consent(ALICE)
    page = crm.callback(code, state)
    assert page.status == 200
    assert f'"{crm.url}"'.encode() in page.body       # /auth was called with origin=crm.url


def test_a_relayed_link_names_both_salesforce_hops_in_server_timing(shared_crm):
    """A relayed link names both of its Salesforce hops in Server-Timing."""
    code, state = shared_crm.consent(ALICE)
    answer = shared_crm.relay(ALICE, code, state)
    assert answer.status == 200
    hops = [hop.strip().split(";dur=")[0] for hop in answer.headers["Server-Timing"].split(",")]
    assert 'sfdc-token;desc="Salesforce code exchange"' in hops
    assert 'sfdc-userinfo;desc="Salesforce userinfo"' in hops


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
    stored = crm.links()["alice@example.com"]
    secrets = [stored["access_token"], stored["refresh_token"], crm.sf.client_secret, crm.iam.auth_token]
    secrets += [t for t in crm.sf.refresh_log]
    everything = b"".join(bodies).decode("utf-8", "replace") + caplog.text
    for secret in secrets:
        assert secret not in everything
    assert re.search(r"200 POST /get-contact", caplog.text)


# --- the state ---------------------------------------------------------------------------------


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
    assert not crm.store_path.exists() or crm.links() == {}


@pytest.mark.parametrize("state", ["garbage", "a.b.c", "x" * 3000])
def test_a_malformed_state_is_400_invalid_state_exactly(shared_crm, state):
    """A malformed state is a 400 with exactly the invalid_state code."""
    answer = shared_crm.relay(ALICE, "c", state)
    assert answer.status == 400 and answer.json()["error"] == "invalid_state"


@pytest.mark.parametrize("mangle", [
    lambda state: state.partition(".")[0] + ".",                     # the MAC part empty
    lambda state: state.partition(".")[0],                           # no MAC part at all
    lambda state: state[:-1],                                        # one character short
    lambda state: state[:-3],                                        # three characters short
    lambda state: state.partition(".")[0] + "." + state.partition(".")[2][:8],   # 8 of 43
], ids=["empty", "missing", "short-1", "short-3", "first-8"])
def test_a_state_whose_mac_is_empty_or_truncated_is_refused_and_links_nothing(crm, mangle):
    """Guards against comparing only as much of the MAC as was sent (mac == expected[:len(mac)])."""
    code, state = crm.consent(ALICE)
    refused = crm.callback(code, mangle(state))
    # A MAC that decodes but does not match is forged: 403; one that is not even base64url is
    # malformed: 400. Either way the code is never exchanged and nothing is linked.
    assert refused.status in (400, 403), refused.body
    assert b"invalid_state" in refused.body
    assert crm.sf.calls["token"] == 0
    assert crm.post("/get-user", {"Token": crm.token(ALICE)}).json()["error"] == "not_linked"
    assert crm.callback(code, state).status == 200   # the genuine state still works


@pytest.mark.parametrize("keep", [0, 42, 40, 20], ids=["empty", "short-1", "short-3", "half"])
def test_a_decodable_but_truncated_or_empty_mac_is_403(shared_crm, keep):
    code, state = shared_crm.consent(ALICE)
    payload, _, mac = state.partition(".")
    assert len(mac) == 43   # 32 bytes of HMAC-SHA256 in unpadded base64url
    refused = shared_crm.callback(code, f"{payload}.{mac[:keep]}")
    assert refused.status == 403 and b"not issued by this server" in refused.body


@pytest.mark.parametrize("payload", [
    b"not json", b"[1, 2]", b'{"n": "x", "e": 9999999999}', b'{"i": "a", "n": "x", "e": "later"}',
    b'{"i": 5, "n": "x", "e": 9999999999}', b'{"i": "a", "n": 5, "e": 9999999999}',
    b'{"i": "a", "n": "x", "e": 9999999999, "o": 5}',
])
def test_a_signed_state_with_malformed_claims_is_400(shared_crm, payload):
    code, _ = shared_crm.consent(ALICE)
    exchanges = shared_crm.sf.calls["token"]
    page = shared_crm.callback(code, _signed(payload))
    assert page.status == 400 and b"invalid_state" in page.body
    assert shared_crm.sf.calls["token"] == exchanges


def test_a_state_used_once_is_refused_in_these_words(shared_crm, caplog):
    """A state is good once; its second use is refused in these words. The operator's log records the link."""
    code, state = shared_crm.consent(ALICE)
    with caplog.at_level(logging.INFO, logger="sfdcflex"):
        assert shared_crm.relay(ALICE, code, state).status == 200
    assert any(m.startswith((f"audit link flex_user={ALICE} sfdc_user={ALICE} ",
                             f"audit relink flex_user={ALICE} sfdc_user={ALICE} ")) for m in caplog.messages)
    assert refusal(shared_crm.relay(ALICE, code, state)) == (
        403, "state_used", "This sign-in link was used already; start linking again")


def test_another_agent_s_state_is_refused_in_these_words(shared_crm):
    """A state another Flex user started is refused in these words."""
    code, state = shared_crm.consent(ALICE)
    assert refusal(shared_crm.relay("bob@example.com", code, state)) == (
        403, "state_mismatch", "This link was started by another Flex user")


def test_a_state_naming_an_origin_not_allowed_is_refused_in_these_words(shared_crm):
    """A state naming a panel origin that is not allowed is refused in these words."""
    state = StateSigner(STATE_SECRET.encode()).sign(ALICE, "https://elsewhere.example")
    assert refusal(shared_crm.relay(ALICE, "some-code", state)) == (
        403, "origin_not_allowed", "This sign-in was started from a page that is not allowed")


def test_one_agent_flooding_junk_callbacks_neither_locks_others_out_nor_touches_the_tokens(crm, caplog):
    """Each POST /auth and junk callback claims a used state before the code is exchanged. One
    agent doing so over and over holds only their newest few, never rewrites the token file
    (nor its stamp, so no other request reads it again), is named in the log, and another agent
    still links."""
    crm.link("bob@example.com")
    lock = crm.store_path.with_name("tokens.json.lock")
    before = (crm.store_path.read_bytes(), crm.store_path.stat().st_mtime_ns, lock.read_bytes())
    token = crm.token("mallory@example.com")
    with caplog.at_level(logging.WARNING, logger="sfdcflex"):
        for _ in range(8):
            authorize_url = crm.post("/auth", {"Token": token}).json()["authorize_url"]
            state = parse_qs(urlsplit(authorize_url).query)["state"][0]
            page = call(crm.url, "GET", f"/oauth-callback?code=junk&state={quote(state)}")
            assert page.status == 400 and b"invalid_code" in page.body
    assert (crm.store_path.read_bytes(), crm.store_path.stat().st_mtime_ns, lock.read_bytes()) == before
    used = json.loads(crm.store_path.with_name("tokens.json.used-states").read_text())["states"]
    assert len(used["mallory@example.com"]) < 8
    assert caplog.messages.count("link refused for Flex user mallory@example.com: invalid_code") == 8
    assert crm.link(ALICE).status == 200


# --- the code ----------------------------------------------------------------------------------


def test_a_code_from_another_flow_fails_pkce(crm):
    first = crm.post("/auth", {"Token": crm.token("alice@example.com")}).json()["authorize_url"]
    second = crm.post("/auth", {"Token": crm.token("alice@example.com")}).json()["authorize_url"]
    code = parse_qs(urlsplit(submit_consent(first, "alice@example.com")).query)["code"][0]
    other_state = parse_qs(urlsplit(second).query)["state"][0]
    page = call(crm.url, "GET", f"/oauth-callback?code={code}&state={other_state}")
    assert page.status == 400 and b"invalid_code" in page.body


@pytest.mark.parametrize("code", ["", "c" * 513])
def test_a_missing_or_oversized_code_is_400(crm, code):
    _, state = crm.consent(ALICE)
    page = call(crm.url, "GET", f"/oauth-callback?code={code}&state={quote(state)}")
    assert page.status == 400 and b"invalid_code" in page.body
    assert crm.sf.calls["token"] == 0


def test_a_code_of_512_characters_is_exchanged_and_a_longer_one_refused_unasked(shared_crm):
    """A code of 512 characters goes to Salesforce; a longer one is refused unasked, in these words."""
    _, state = shared_crm.consent(ALICE)
    exchanges = shared_crm.sf.calls["token"]
    assert shared_crm.relay(ALICE, "c" * 513, state).json() == {
        "error": "invalid_code", "message": "The authorization code is missing or malformed"}
    assert shared_crm.sf.calls["token"] == exchanges
    assert shared_crm.relay(ALICE, "c" * 512, state).json()["error"] == "invalid_code"   # Salesforce's no
    assert shared_crm.sf.calls["token"] == exchanges + 1


def test_an_empty_code_is_refused_before_salesforce_is_asked(shared_crm):
    """An empty code is refused before Salesforce is asked."""
    _, state = shared_crm.consent(ALICE)
    exchanges = shared_crm.sf.calls["token"]
    assert shared_crm.relay(ALICE, "", state).json() == {
        "error": "invalid_code", "message": "The authorization code is missing or malformed"}
    assert shared_crm.sf.calls["token"] == exchanges


@pytest.mark.parametrize("body,words", [
    (b'{"access_token": "00D!x", "id": "https://x/id/00D/005", "instance_url": "https://x"}',
     "no refresh token"),
    (b'{"refresh_token": "5Aep", "instance_url": "https://x"}', "lacks access_token"),
    (b'["access_token"]', "not an object"),
    (b'<html>Maintenance</html>', "not JSON"),
])
def test_odd_token_answers_at_the_code_exchange_link_nothing(crm, body, words):
    crm.sf.fail_next("token", status=200, body=body)
    page = crm.link(ALICE)
    assert page.status == 502 and words.encode() in page.body, page.body
    assert not crm.store_path.exists() or ALICE not in json.loads(crm.store_path.read_text())["agents"]


@pytest.mark.parametrize("error,status,words,logged", [
    ("redirect_uri_mismatch", 502, "redirect URI", "PUBLIC_URL"),
    ("invalid_client_id", 502, "app credentials", "SFDC_CLIENT_ID"),
    ("invalid_grant", 400, "used or expired", None),
    ("unsupported_grant_type", 502, "unsupported_grant_type", None),
])
def test_token_endpoint_refusals_name_what_to_fix_to_whom_it_concerns(crm, error, status, words, logged, caplog):
    """The agent learns what happened; which settings to check goes to the operator's log only."""
    crm.sf.fail_next("token", status=400, body=json.dumps(
        {"error": error, "error_description": "refused"}).encode())
    page = crm.link(ALICE)
    assert page.status == status and words.encode() in page.body, page.body
    assert not any(name.encode() in page.body for name in ("PUBLIC_URL", "SFDC_CLIENT_ID", "SFDC_CLIENT_SECRET"))
    assert logged is None or logged in caplog.text
