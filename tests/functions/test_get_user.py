"""get-user end to end over the stand-ins: who the agent is in Salesforce, per agent and cached."""
from __future__ import annotations

import json

from tests.support.http import hops

ALICE, BOB = "alice@example.com", "bob@example.com"


def test_get_user_not_linked_is_404(crm):
    answer = crm.post("/get-user", {"Token": crm.token(ALICE)})
    assert answer.status == 404 and answer.json()["error"] == "not_linked"
    assert "connect Salesforce" in answer.json()["message"]


def test_two_agents_in_turn_each_get_their_own_user_fresh_and_cached(crm):
    """Planted: the user cache keyed without the agent (lookup.user with owner "") serves Bob Alice."""
    assert crm.link(ALICE).status == 200 and crm.link(BOB).status == 200
    tokens = {ALICE: crm.token(ALICE), BOB: crm.token(BOB)}
    names = {ALICE: "Alice Agent", BOB: "Bob Agent"}
    userinfo_calls = crm.sf.calls["userinfo"]
    for source in ("miss", "hit", "hit"):   # from Salesforce first, then from the cache
        for identity in (ALICE, BOB):
            answer = crm.post("/get-user", {"Token": tokens[identity]})
            assert answer.status == 200, answer.body
            assert answer.json()["sfdc_username"] == identity
            assert answer.json()["display_name"] == names[identity]
            assert answer.json()["flex_identity"] == identity
            assert f'cache;desc="{source}"' in answer.headers["Server-Timing"]
    assert crm.sf.calls["userinfo"] == userinfo_calls + 2   # one per agent, the rest cached


def test_get_user_answers_each_userinfo_field_and_falls_back_to_the_username(crm):
    """get-user answers each userinfo field, falls back to the username for a name, and is cached."""
    assert crm.link(ALICE).status == 200
    crm.services.lookup.forget(ALICE)
    info = {"preferred_username": ALICE, "email": "alice.mail@example.com",
            "user_id": "005000000000042AAA", "organization_id": crm.sf.org_id}
    crm.sf.fail_next("userinfo", status=200, body=json.dumps(info).encode(), content_type="application/json")
    answer = crm.post("/get-user", {"Token": crm.token(ALICE)})
    assert answer.status == 200, answer.body
    assert answer.json() == {"flex_identity": ALICE, "sfdc_username": ALICE, "display_name": ALICE,
                             "email": "alice.mail@example.com", "sfdc_user_id": "005000000000042AAA",
                             "sfdc_org_id": crm.sf.org_id}
    crm.services.lookup.forget(ALICE)
    named = crm.post("/get-user", {"Token": crm.token(ALICE)})
    assert (named.json()["display_name"], named.json()["email"]) == ("Alice Agent", ALICE)
    assert 'cache;desc="miss"' in hops(named)
    assert 'cache;desc="hit"' in hops(crm.post("/get-user", {"Token": crm.token(ALICE)}))
