"""Linking behaviour that mutation testing found unchecked (mutmut 3.8, issue 18): the words an
agent or administrator reads when Salesforce declines, where the popup reports a failure, what the
operator's log says when refused tokens cannot be revoked.

Each test names the surviving mutants it kills; the equivalent ones are listed in README's
reliability report. One server and one set of stand-ins serve the whole module.
"""
from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.crm import STATE_SECRET, crm_on_own_standins
from tests.support.http import call
from sfdcflex.oauth_state import StateSigner
from sfdcflex.demo.standins.salesforce import submit_consent
from sfdcflex.linking import Declined, Linker

ALICE = "alice@example.com"


@pytest.fixture(scope="module")
def crm(tmp_path_factory):
    with crm_on_own_standins(tmp_path_factory.mktemp("linking-mutants")) as made:
        yield made


# --- Salesforce declines -----------------------------------------------------------------------

def test_deny_tells_the_agent_what_to_do_in_these_words():
    """Declined.from_redirect 5, 8-10."""
    declined = Declined.from_redirect("access_denied", "end-user denied authorization")
    assert (declined.status, declined.code) == (403, "access_denied")
    assert declined.message == ("You pressed Deny on Salesforce's page, so Salesforce is not connected; "
                                "press Connect again and choose Allow to link it")


def test_another_refusal_names_salesforce_s_error_cut_to_60_and_100_characters():
    """Declined.from_redirect 12-15."""
    error, description = "E" * 59 + "rr", "d" * 99 + "ee"
    declined = Declined.from_redirect(error, description)
    assert declined.message == (f"Salesforce refused the sign-in ({'E' * 59}r: {'d' * 99}e), "
                                "so nothing was linked; ask your Salesforce administrator")


def test_a_declined_popup_reports_to_the_panel_that_started_it(crm):
    """origin_of 1, 2 (the failure page posted to FLEX_INSTANCE_URL instead of the state's origin)."""
    start = crm.post("/auth", {"Token": crm.token(ALICE), "origin": crm.url})
    location = submit_consent(start.json()["authorize_url"], ALICE, allow=False)
    page = call(crm.url, "GET", location[len(crm.url):])
    assert page.status == 403 and '"link_failed"' in page.body.decode()
    assert f'postMessage(message, "{crm.url}")' in page.body.decode()


# --- a refused link whose tokens cannot be revoked ------------------------------------------------

def test_a_refused_link_whose_revoke_fails_logs_why(crm, caplog):
    """_revoke_quietly 3, 5, 6 (the operator's log line garbled)."""
    crm.sf.fail_next("revoke", status=500)
    with caplog.at_level(logging.WARNING, logger="sfdcflex"):
        refused = crm.link(ALICE, sfdc_username="mallory.other@example.com")
    assert refused.status == 403 and b"identity_mismatch" in refused.body
    assert "could not revoke refused tokens: salesforce_error" in caplog.messages


# --- the relayed callback (JSON): each refusal in its words -------------------------------------------

def _consent(crm, identity: str, sfdc_username: str | None = None) -> tuple[str, str]:
    """/auth for `identity`, then Salesforce's page signed in as `sfdc_username`: (code, state)."""
    start = crm.post("/auth", {"Token": crm.token(identity), "origin": crm.url})
    query = parse_qs(urlsplit(submit_consent(start.json()["authorize_url"], sfdc_username or identity)).query)
    return query["code"][0], query["state"][0]


def _relay(crm, identity: str, code: str, state: str):
    return crm.post("/oauth-callback", {"Token": crm.token(identity), "code": code, "state": state})


def _refusal(answer) -> tuple[int, str, str]:
    return answer.status, answer.json()["error"], answer.json()["message"]


def test_a_code_of_512_characters_is_exchanged_and_a_longer_one_refused_unasked(crm):
    """complete (MAX_CODE_CHARS and its comparison; the 400's words)."""
    _, state = _consent(crm, ALICE)
    exchanges = crm.sf.calls["token"]
    assert _relay(crm, ALICE, "c" * 513, state).json() == {
        "error": "invalid_code", "message": "The authorization code is missing or malformed"}
    assert crm.sf.calls["token"] == exchanges
    assert _relay(crm, ALICE, "c" * 512, state).json()["error"] == "invalid_code"   # Salesforce's no
    assert crm.sf.calls["token"] == exchanges + 1


def test_a_state_used_once_is_refused_in_these_words(crm, caplog):
    """_verified (state_used's words), complete (the operator's log line for a link)."""
    code, state = _consent(crm, ALICE)
    with caplog.at_level(logging.INFO, logger="sfdcflex"):
        assert _relay(crm, ALICE, code, state).status == 200
    assert f"linked Flex user {ALICE} to Salesforce user {ALICE}" in caplog.messages
    assert _refusal(_relay(crm, ALICE, code, state)) == (
        403, "state_used", "This sign-in link was used already; start linking again")


def test_another_agent_s_state_is_refused_in_these_words(crm):
    """_verified (state_mismatch's words)."""
    code, state = _consent(crm, ALICE)
    assert _refusal(_relay(crm, "bob@example.com", code, state)) == (
        403, "state_mismatch", "This link was started by another Flex user")


def test_a_state_naming_an_origin_not_allowed_is_refused_in_these_words(crm):
    """_verified (origin_not_allowed's words)."""
    state = StateSigner(STATE_SECRET.encode()).sign(ALICE, "https://elsewhere.example")
    assert _refusal(_relay(crm, ALICE, "some-code", state)) == (
        403, "origin_not_allowed", "This sign-in was started from a page that is not allowed")


def test_a_user_of_another_org_is_refused_in_these_words(crm, caplog):
    """_check_user (wrong_org's words; the operator's log line)."""
    crm.iam.add_agent("eve@example.com", "Eve")
    code, state = _consent(crm, "eve@example.com")
    with caplog.at_level(logging.WARNING, logger="sfdcflex"):
        refused = _relay(crm, "eve@example.com", code, state)
    assert _refusal(refused) == (403, "wrong_org", "The Salesforce user eve@example.com belongs to another "
                                                    "Salesforce org; sign in to your company's org")
    assert "link refused for Flex user eve@example.com: wrong_org" in caplog.messages


def test_another_salesforce_user_is_refused_in_these_words(crm):
    """_check_user (identity_mismatch's words)."""
    code, state = _consent(crm, ALICE, "mallory.other@example.com")
    assert _refusal(_relay(crm, ALICE, code, state)) == (
        403, "identity_mismatch",
        f"The Salesforce user mallory.other@example.com is not the Flex user {ALICE}; sign in to Salesforce "
        f"as {ALICE} (if there is no such user, ask your Salesforce administrator to create it)")


def test_userinfo_without_a_username_or_org_is_a_bad_gateway(crm):
    """_check_user (the 502's words)."""
    for info in ({"organization_id": crm.sf.org_id}, {"preferred_username": ALICE}):
        code, state = _consent(crm, ALICE)
        crm.sf.fail_next("userinfo", status=200, body=json.dumps(info).encode(), content_type="application/json")
        assert _refusal(_relay(crm, ALICE, code, state)) == (
            502, "upstream_error", "Salesforce's userinfo lacks preferred_username or organization_id")


# --- which panel origin a state carries ----------------------------------------------------------------

@pytest.mark.parametrize("suffix,kept", [("/", True), ("//", True), ("X", False), (" ", False), ("\n", False)])
def test_auth_keeps_an_allowed_origin_without_its_trailing_slashes_and_nothing_else(crm, suffix, kept):
    """_allowed 2-4, 6-7 (another strip lets a look-alike origin through, or keeps the slash)."""
    start = crm.post("/auth", {"Token": crm.token(ALICE), "origin": crm.url + suffix})
    state = parse_qs(urlsplit(start.json()["authorize_url"]).query)["state"][0]
    assert StateSigner(STATE_SECRET.encode()).verify(state).origin == (crm.url if kept else None)


def test_allowed_origins_given_with_a_trailing_slash_are_allowed_without_it():
    """Linker.__init__ 10, 11 (the settings' origins kept with their slash)."""
    signer = StateSigner(b"k" * 32)
    linker = Linker(None, None, signer, org_id="00D", callback_url="https://x.example/cb",
                    relay_redirect_uri="https://x.example/r", allowed_origins=("https://panel.example/",))
    assert linker.origin_of(signer.sign(ALICE, "https://panel.example")) == "https://panel.example"


# --- found by the second pass over linking.py (all 277 mutants run) ----------------------------------

def test_an_empty_code_is_refused_before_salesforce_is_asked(crm):
    """complete 2 (`and` for the first `or`: an empty code went on to the code exchange)."""
    _, state = _consent(crm, ALICE)
    exchanges = crm.sf.calls["token"]
    assert _relay(crm, ALICE, "", state).json() == {
        "error": "invalid_code", "message": "The authorization code is missing or malformed"}
    assert crm.sf.calls["token"] == exchanges


def test_a_relayed_link_names_both_salesforce_hops_in_server_timing(crm):
    """complete 29, 32-36, 45, 48-52 (the hops' names and descriptions in Server-Timing)."""
    code, state = _consent(crm, ALICE)
    answer = _relay(crm, ALICE, code, state)
    assert answer.status == 200
    hops = [hop.strip().split(";dur=")[0] for hop in answer.headers["Server-Timing"].split(",")]
    assert 'sfdc-token;desc="Salesforce code exchange"' in hops
    assert 'sfdc-userinfo;desc="Salesforce userinfo"' in hops


def test_a_salesforce_user_without_a_name_is_shown_by_username(crm):
    """complete 104, 105 (the display name's fallback read a key userinfo never has)."""
    for info in ({"preferred_username": ALICE, "organization_id": crm.sf.org_id},
                 {"preferred_username": ALICE, "organization_id": crm.sf.org_id, "name": ""}):
        code, state = _consent(crm, ALICE)
        crm.sf.fail_next("userinfo", status=200, body=json.dumps(info).encode(), content_type="application/json")
        answer = _relay(crm, ALICE, code, state)
        assert (answer.status, answer.json()) == (
            200, {"linked": True, "sfdc_username": ALICE, "display_name": ALICE})


def test_complete_returns_the_identity_the_state_names(crm):
    """complete 88 (LinkResult.identity None; no handler reads it, so only a direct call sees it)."""
    from sfdcflex.runtime.timing import ServerTiming
    code, state = _consent(crm, ALICE)
    result = crm.services.linker.complete(code, state, ServerTiming())
    assert (result.identity, result.sfdc_username, result.origin) == (ALICE, ALICE, crm.url)


def test_a_linker_built_without_the_setting_refuses_the_original_plugin_s_login():
    """Linker.__init__ 1 (original_login's default; services always passes the setting)."""
    linker = Linker(None, None, StateSigner(b"k" * 32), org_id="00D", callback_url="https://x.example/cb",
                    relay_redirect_uri="https://x.example/r", allowed_origins=())
    assert linker.original_login is False


def test_an_allowed_origin_ending_in_a_capital_x_is_kept_whole():
    """Linker.__init__ 12, _allowed 8 (rstrip of "XX/XX" also strips a trailing "X")."""
    signer = StateSigner(b"k" * 32)
    origin = "https://SHOP.EXAMPLE.BOX"
    linker = Linker(None, None, signer, org_id="00D", callback_url="https://x.example/cb",
                    relay_redirect_uri="https://x.example/r", allowed_origins=(origin + "/",))
    assert linker.origin_of(signer.sign(ALICE, origin + "/")) == origin
