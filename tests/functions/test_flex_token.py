"""The Flex token every function takes, end to end over the stand-ins: what Twilio IAM's refusals
and odd answers become, and a token too long to ask about."""
from __future__ import annotations

import threading

import pytest

from tests.support.http import call
from tests.support.processes import wait_until

ALICE = "alice@example.com"


def _error(answer, status: int, code: str) -> dict:
    assert answer.status == status, answer.body
    assert answer.json()["error"] == code, answer.body
    return answer.json()


def test_a_token_over_16_kib_is_refused_without_asking_iam(crm):
    calls = crm.iam.calls["validate"]
    _error(crm.post("/get-user", {"Token": "e" * (16 * 1024 + 1)}), 403, "invalid_token")
    assert crm.iam.calls["validate"] == calls


@pytest.mark.parametrize("status,answer,code", [
    (400, 403, "invalid_token"),                 # IAM's 400: the token is not one it can read
    (404, 502, "iam_credentials_rejected"),      # the account is unknown to IAM
    (401, 502, "iam_credentials_rejected"),
])
def test_iam_refusals_are_told_apart(crm, status, answer, code, caplog):
    crm.iam.fail_next("validate", status=status)
    body = _error(crm.post("/get-user", {"Token": crm.token(ALICE)}), answer, code)
    if status != 400:
        # The operator's hint goes to the log; a client is never told which setting to check.
        assert "ACCOUNT_SID" in caplog.text and "ACCOUNT_SID" not in body["message"]


@pytest.mark.parametrize("body,status,code", [
    (b'{"valid": false, "code": 20101, "message": "Invalid Access Token"}', 403, "invalid_token"),
    (b'{"valid": true, "roles": ["agent"]}', 403, "invalid_token"),           # no realm_user_id
    (b'{"valid": true, "realm_user_id": ""}', 403, "invalid_token"),
    (b'{"valid": "true", "realm_user_id": "alice@example.com"}', 403, "invalid_token"),
    (b'<html>Service Unavailable</html>', 502, "iam_unavailable"),              # not JSON
    (b'["valid", true]', 502, "iam_unavailable"),                              # JSON, no object
])
def test_iam_answering_200_oddly_gets_its_documented_answer(crm, body, status, code):
    """Guards against `answer.get("valid") is not False` (a missing or odd `valid` let through)."""
    assert crm.link(ALICE).status == 200
    crm.iam.fail_next("validate", status=200, body=body)
    answer = crm.post("/get-user", {"Token": crm.token(ALICE)})
    assert answer.status == status, answer.body
    assert answer.json()["error"] == code
    # Nothing was cached from the odd answer: the next check asks IAM again and succeeds.
    assert crm.post("/get-user", {"Token": crm.token(ALICE)}).status == 200


def test_outsiders_random_tokens_leave_the_iam_checks_kept_for_known_clients(crm, monkeypatch):
    """Random tokens from an outsider's address fill the open IAM places (each costs a call)
    and the next is 503 iam_busy; an agent's renewed token, from an address whose token passed
    before, is checked at once through the places kept for known clients."""
    from sfdcflex.clients import iam as iam_module
    monkeypatch.setattr(iam_module, "IAM_QUEUE_SECONDS", 0.05)   # the 0.5 s wait, shortened
    crm.link(ALICE)                                              # Alice's address: a passed check
    open_places = iam_module.MAX_IAM_CALLS - iam_module.RESERVED_IAM_CALLS
    release, before = threading.Event(), crm.iam.calls["validate"]
    crm.iam.fail_next("validate", hold=release, count=open_places)
    outsiders = [threading.Thread(target=call, args=(crm.url, "POST", "/get-user"),
                                  kwargs={"body": {"Token": f"random-{n}"}, "source": "127.0.0.2"})
                 for n in range(open_places)]
    for outsider in outsiders:
        outsider.start()
    try:
        assert wait_until(lambda: crm.iam.calls["validate"] == before + open_places, 5)
        busy = call(crm.url, "POST", "/get-user", body={"Token": "random-more"}, source="127.0.0.2")
        _error(busy, 503, "iam_busy")
        renewed = crm.post("/get-user", {"Token": crm.token(ALICE)})
        assert renewed.status == 200 and renewed.json()["flex_identity"] == ALICE
    finally:
        release.set()
        for outsider in outsiders:
            outsider.join(10)
