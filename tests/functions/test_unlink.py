"""unlink end to end over the stand-ins: the grant revoked at Salesforce, the link deleted and
forgotten, even when Salesforce cannot revoke."""
from __future__ import annotations

import logging

ALICE = "alice@example.com"


def test_unlink_revokes_deletes_and_forgets(crm):
    crm.link("alice@example.com")
    token = crm.token("alice@example.com")
    assert crm.post("/get-contact", {"Token": token, "phone": "+14155550101"}).status == 200
    revokes = crm.sf.calls["revoke"]
    answer = crm.post("/unlink", {"Token": token})
    assert answer.json() == {"unlinked": True}
    assert crm.sf.calls["revoke"] == revokes + 1
    assert "alice@example.com" not in crm.links()
    gone = crm.post("/get-contact", {"Token": token, "phone": "+14155550101"})
    assert gone.status == 404 and gone.json()["error"] == "not_linked"
    assert crm.post("/unlink", {"Token": token}).json() == {"unlinked": False}


def test_unlink_revokes_the_stored_refresh_token(crm):
    """Unlink revokes the stored refresh token at Salesforce."""
    assert crm.link(ALICE).status == 200
    assert crm.sf.live_grants(ALICE) == 1
    assert crm.post("/unlink", {"Token": crm.token(ALICE)}).json() == {"unlinked": True}
    assert crm.sf.live_grants(ALICE) == 0


def test_unlink_when_salesforce_cannot_revoke_still_forgets_the_link(crm, caplog):
    """A revoke that fails does not keep the link; the operator's log says who and why."""
    assert crm.link(ALICE).status == 200
    crm.sf.fail_next("revoke", status=500)
    with caplog.at_level(logging.WARNING, logger="sfdcflex"):
        answer = crm.post("/unlink", {"Token": crm.token(ALICE)})
    assert answer.status == 200 and answer.json()["unlinked"] is True
    assert (f"unlink {ALICE}: Salesforce revoke failed (salesforce_error); deleting the link anyway"
            in caplog.messages)
    assert crm.post("/get-user", {"Token": crm.token(ALICE)}).json()["error"] == "not_linked"
