"""Whose Salesforce user an agent may link, end to end over the stand-ins: only their own (the
username is their Flex identity, case aside) in the configured org; a refused link revokes the
tokens it was given and keeps the earlier link; each refusal in its words."""
from __future__ import annotations

import json
import logging

from sfdcflex.runtime.timing import ServerTiming
from tests.support.http import refusal

ALICE = "alice@example.com"


def test_a_different_salesforce_user_is_refused_and_the_earlier_link_survives(crm):
    assert crm.link("alice@example.com").status == 200
    before = crm.links()["alice@example.com"]
    refused = crm.link("alice@example.com", sfdc_username="mallory.other@example.com")
    assert refused.status == 403
    assert b"identity_mismatch" in refused.body and b"sign in to Salesforce as alice@example.com" in refused.body
    assert b"ask your Salesforce administrator" in refused.body  # the user may not exist yet
    assert crm.links()["alice@example.com"] == before
    assert crm.post("/get-user", {"Token": crm.token("alice@example.com")}).status == 200


def test_a_refused_link_revokes_the_tokens_it_was_given(crm):
    """Guards against Linker._check_user raising without _revoke_quietly (Mallory's grant left alive)."""
    mallory = "mallory.other@example.com"
    revokes = crm.sf.calls["revoke"]
    refused = crm.link(ALICE, sfdc_username=mallory)
    assert refused.status == 403 and b"identity_mismatch" in refused.body
    assert crm.sf.calls["revoke"] == revokes + 1
    assert crm.sf.live_grants(mallory) == 0          # the refresh token took its access token along
    assert crm.sf.live_grants(ALICE) == 0            # and nothing was issued to the agent instead


def test_a_user_of_another_org_is_refused_and_its_tokens_revoked(crm):
    crm.iam.add_agent("eve@example.com", "Eve")
    refused = crm.link("eve@example.com")
    assert refused.status == 403 and b"wrong_org" in refused.body
    assert not crm.store_path.exists() or "eve@example.com" not in crm.links()
    assert crm.sf.live_grants("eve@example.com") == 0


def test_a_mixed_case_flex_identity_links_to_the_lower_case_salesforce_user(crm):
    """Guards against an exact (case-sensitive) username comparison in Linker._check_user."""
    crm.iam.add_agent("Alice@Example.COM", "Alice")
    linked = crm.link("Alice@Example.COM", sfdc_username=ALICE)
    assert linked.status == 200, linked.body
    answer = crm.post("/get-user", {"Token": crm.token("Alice@Example.COM")})
    assert answer.status == 200
    assert answer.json()["sfdc_username"] == ALICE
    assert answer.json()["flex_identity"] == "Alice@Example.COM"


def test_a_refused_link_whose_revoke_fails_is_still_refused_and_logs_why(crm, caplog):
    """A refused link whose tokens cannot be revoked is still refused; the operator's log says why."""
    crm.sf.fail_next("revoke", status=503)
    with caplog.at_level(logging.WARNING, logger="sfdcflex"):
        refused = crm.link(ALICE, sfdc_username="mallory.other@example.com")
    assert refused.status == 403 and b"identity_mismatch" in refused.body
    assert "could not revoke refused tokens: salesforce_error" in caplog.messages
    assert crm.post("/get-user", {"Token": crm.token(ALICE)}).json()["error"] == "not_linked"


def test_userinfo_without_username_or_org_is_502_and_links_nothing(crm):
    crm.sf.fail_next("userinfo", status=200, body=b'{"user_id": "005x", "organization_id": 7}')
    page = crm.link(ALICE)
    assert page.status == 502 and b"preferred_username" in page.body
    assert crm.post("/get-user", {"Token": crm.token(ALICE)}).json()["error"] == "not_linked"


# --- each refusal in its words (the relayed callback's JSON) ----------------------------------------


def test_a_user_of_another_org_is_refused_in_these_words(shared_crm, caplog):
    """A Salesforce user of another org is refused in these words, and the operator's log says so."""
    shared_crm.iam.add_agent("eve@example.com", "Eve")
    code, state = shared_crm.consent("eve@example.com")
    with caplog.at_level(logging.WARNING, logger="sfdcflex"):
        refused = shared_crm.relay("eve@example.com", code, state)
    assert refusal(refused) == (403, "wrong_org", "The Salesforce user eve@example.com belongs to another "
                                                    "Salesforce org; sign in to your company's org")
    assert "link refused for Flex user eve@example.com: wrong_org" in caplog.messages


def test_another_salesforce_user_is_refused_in_these_words(shared_crm):
    """A Salesforce user other than the agent is refused in these words."""
    code, state = shared_crm.consent(ALICE, "mallory.other@example.com")
    assert refusal(shared_crm.relay(ALICE, code, state)) == (
        403, "identity_mismatch",
        f"The Salesforce user mallory.other@example.com is not the Flex user {ALICE}; sign in to Salesforce "
        f"as {ALICE} (if there is no such user, ask your Salesforce administrator to create it)")


def test_userinfo_without_a_username_or_org_is_a_bad_gateway(shared_crm):
    """Userinfo that lacks the username or the org is a 502 in these words."""
    for info in ({"organization_id": shared_crm.sf.org_id}, {"preferred_username": ALICE}):
        code, state = shared_crm.consent(ALICE)
        shared_crm.sf.fail_next("userinfo", status=200, body=json.dumps(info).encode(), content_type="application/json")
        assert refusal(shared_crm.relay(ALICE, code, state)) == (
            502, "upstream_error", "Salesforce's userinfo lacks preferred_username or organization_id")


def test_a_salesforce_user_without_a_name_is_shown_by_username(shared_crm):
    """A Salesforce user without a name is shown by username."""
    for info in ({"preferred_username": ALICE, "organization_id": shared_crm.sf.org_id},
                 {"preferred_username": ALICE, "organization_id": shared_crm.sf.org_id, "name": ""}):
        code, state = shared_crm.consent(ALICE)
        shared_crm.sf.fail_next("userinfo", status=200, body=json.dumps(info).encode(), content_type="application/json")
        answer = shared_crm.relay(ALICE, code, state)
        assert (answer.status, answer.json()) == (
            200, {"linked": True, "sfdc_username": ALICE, "display_name": ALICE})


def test_complete_returns_the_identity_the_state_names(shared_crm):
    """complete() returns the identity the state names (no handler reads it: only a direct call sees it)."""
    code, state = shared_crm.consent(ALICE)
    result = shared_crm.services.linker.complete(code, state, ServerTiming())
    assert (result.identity, result.sfdc_username, result.origin) == (ALICE, ALICE, shared_crm.url)
