"""log-call over real sockets against the Salesforce stand-in: the Task, idempotency, refusals, tokens."""
from __future__ import annotations

import datetime
import json
import threading

import pytest

from tests.support.http import call
from tests.support.record_pages import log_in, page

ALICE = "alice@example.com"
BOB = "bob@example.com"
CALL_SID = "CA" + "0123456789abcdef" * 2
OTHER_CALL = "CA" + "fedcba9876543210" * 2
TASK_SID = "WT" + "00112233445566778899aabbccddeeff"


@pytest.fixture
def linked(crm):
    crm.link(ALICE)
    crm.ada = next(c["Id"] for c in crm.sf.org.all("Contact") if c["Name"] == "Ada Lovelace")
    crm.mary = next(c["Id"] for c in crm.sf.org.all("Contact") if c["Name"] == "Mary Mobile")
    crm.lead = crm.sf.add_lead("Grace Prospect", "Hopper Industries", phone="+1 303 555 0142")
    return crm


def _log(crm, who=ALICE, **body):
    return crm.post("/log-call", {"Token": crm.token(who), **body})


def _tasks(crm) -> list[dict]:
    return crm.sf.org.all("Task")


def _sf_calls(crm) -> int:
    return sum(crm.sf.calls.values())


def test_first_log_creates_a_completed_call_task_on_the_contact_and_its_account(linked):
    before = _sf_calls(linked)
    answer = _log(linked, contact_id=linked.ada, call_sid=CALL_SID, direction="inbound", duration=95,
                  disposition="Resolved", notes="Asked about the invoice", phone="+14155550101")
    assert answer.status == 200, answer.body
    logged = answer.json()
    assert logged["created"] is True
    assert logged["task_url"] == f"{linked.sf.url}/lightning/r/Task/{logged['task_id']}/view"
    [task] = _tasks(linked)
    ada = linked.sf.org.get("Contact", linked.ada)
    alice = next(u for u in linked.sf.org.all("User") if u["Username"] == ALICE)
    assert task["Id"] == logged["task_id"] and task["OwnerId"] == alice["Id"]
    assert (task["WhoId"], task["WhatId"]) == (linked.ada, ada["AccountId"])
    assert task["Subject"] == "Inbound call from +14155550101"
    assert (task["TaskSubtype"], task["Type"], task["Status"]) == ("Call", "Call", "Completed")
    assert task["ActivityDate"] == datetime.date.today().isoformat()
    assert (task["CallType"], task["CallDurationInSeconds"]) == ("Inbound", 95)
    assert (task["CallDisposition"], task["CallObject"]) == ("Resolved", CALL_SID)
    assert task["Description"] == "Asked about the invoice"
    # Who the agent is (userinfo, once per link, cached like get-user's), one query for their
    # earlier log of this call, one for the Contact's Account, one create.
    assert _sf_calls(linked) == before + 4
    assert linked.sf.calls["sobject-create"] == 1
    assert "sfdc-write" in answer.headers["Server-Timing"]
    # The agent sees the call on the Contact's page, logged in to Salesforce in the browser.
    cookie, _ = log_in(linked.sf, ALICE)
    status, _, shown = page(linked.sf, f"/lightning/r/Contact/{linked.ada}/view", cookie)
    assert status == 200 and "Asked about the invoice" in shown
    status, _, shown = page(linked.sf, logged["task_url"].removeprefix(linked.sf.url), cookie)
    assert status == 200 and "<h1>Inbound call from +14155550101</h1>" in shown
    assert "<dd>Resolved</dd>" in shown and "<dd>1 min 35 s</dd>" in shown and "Ada Lovelace" in shown


def test_second_log_of_the_same_call_updates_the_one_task(linked):
    first = _log(linked, contact_id=linked.ada, call_sid=CALL_SID, duration=30).json()
    before = _sf_calls(linked)
    again = _log(linked, contact_id=linked.ada, call_sid=CALL_SID, duration=42,
                 disposition="Call back", notes="Second save")
    assert again.status == 200, again.body
    assert again.json() == {**first, "created": False}
    [task] = _tasks(linked)
    assert (task["CallDurationInSeconds"], task["CallDisposition"], task["Description"]) == \
        (42, "Call back", "Second save")
    assert task["TaskSubtype"] == "Call"  # create-only in Salesforce: never sent on update
    assert _sf_calls(linked) == before + 2  # the CallObject query and one PATCH; same contact
    assert (linked.sf.calls["sobject-create"], linked.sf.calls["sobject-update"]) == (1, 1)


def test_a_transferred_call_gives_each_agent_a_task_of_their_own(linked):
    """A warm or cold transfer keeps the call SID: the second agent's Save must neither
    overwrite the first agent's notes nor re-point their Task, and a colleague's call SID
    logs nothing into another agent's Task."""
    linked.link(BOB)
    alices = _log(linked, contact_id=linked.ada, call_sid=CALL_SID, duration=30, notes="Alice's notes")
    bobs = _log(linked, BOB, contact_id=linked.mary, call_sid=CALL_SID, duration=60, notes="Bob's notes")
    assert (alices.status, bobs.status) == (200, 200), bobs.body
    assert alices.json()["created"] and bobs.json()["created"]
    assert alices.json()["task_id"] != bobs.json()["task_id"]
    again = _log(linked, BOB, contact_id=linked.mary, call_sid=CALL_SID, notes="Bob, again")
    assert again.json() == {**bobs.json(), "created": False}
    users = {u["Username"]: u["Id"] for u in linked.sf.org.all("User")}
    tasks = {t["OwnerId"]: t for t in _tasks(linked)}
    assert set(tasks) == {users[ALICE], users[BOB]}
    alice_task, bob_task = tasks[users[ALICE]], tasks[users[BOB]]
    assert (alice_task["WhoId"], alice_task["Description"], alice_task["CallDurationInSeconds"]) == \
        (linked.ada, "Alice's notes", 30)
    assert (bob_task["WhoId"], bob_task["Description"], bob_task["CallObject"]) == \
        (linked.mary, "Bob, again", CALL_SID)


def test_task_sid_is_the_key_when_there_is_no_call(linked):
    first = _log(linked, contact_id=linked.ada, task_sid=TASK_SID).json()
    again = _log(linked, contact_id=linked.ada, task_sid=TASK_SID, notes="chat ended").json()
    assert first["created"] and not again["created"] and again["task_id"] == first["task_id"]
    assert [t["CallObject"] for t in _tasks(linked)] == [TASK_SID]


def test_relogging_on_another_contact_moves_the_task(linked):
    _log(linked, contact_id=linked.ada, call_sid=CALL_SID)
    moved = _log(linked, contact_id=linked.mary, call_sid=CALL_SID, direction="outbound")
    assert moved.status == 200 and moved.json()["created"] is False
    [task] = _tasks(linked)
    mary = linked.sf.org.get("Contact", linked.mary)
    assert (task["WhoId"], task["WhatId"], task["CallType"]) == (linked.mary, mary["AccountId"], "Outbound")


def test_a_call_on_a_lead_relates_to_no_account(linked):
    before = _sf_calls(linked)
    answer = _log(linked, contact_id=linked.lead, call_sid=CALL_SID, direction="outbound-dial",
                  phone="303 555 0142")
    assert answer.status == 200, answer.body
    [task] = _tasks(linked)
    assert (task["WhoId"], task["WhatId"]) == (linked.lead, None)
    assert task["Subject"] == "Outbound call to +13035550142"
    assert _sf_calls(linked) == before + 3  # userinfo, the query; no Account to look up for a Lead


def test_a_fifteen_character_contact_id_works_and_stays_one_task(linked):
    _log(linked, contact_id=linked.ada[:15], call_sid=CALL_SID)
    again = _log(linked, contact_id=linked.ada, call_sid=CALL_SID)
    assert again.json()["created"] is False
    assert linked.sf.calls["sobject-update"] == 1 and len(_tasks(linked)) == 1


def test_two_saves_at_once_make_one_task(linked):
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(
        _log(linked, contact_id=linked.ada, call_sid=OTHER_CALL))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [a.status for a in answers] == [200] * 4
    assert sorted(a.json()["created"] for a in answers) == [False, False, False, True]
    assert len(_tasks(linked)) == 1


BAD_INPUT = [  # (body, error code); "ADA" and "LEAD" stand for real record ids
    ({"contact_id": "0015e00000ABCDE", "call_sid": CALL_SID}, "invalid_contact_id"),
    ({"contact_id": "003' OR Id != '", "call_sid": CALL_SID}, "invalid_contact_id"),
    ({"contact_id": "0035e00000ABC", "call_sid": CALL_SID}, "invalid_contact_id"),
    ({"contact_id": ["003"], "call_sid": CALL_SID}, "invalid_contact_id"),
    ({"call_sid": CALL_SID}, "invalid_contact_id"),
    ({"contact_id": "ADA"}, "missing_call_sid"),
    ({"contact_id": "ADA", "call_sid": "CA' OR CallObject != '"}, "invalid_call_sid"),
    ({"contact_id": "ADA", "task_sid": "WT123"}, "invalid_task_sid"),
    ({"contact_id": "ADA", "call_sid": CALL_SID, "direction": "sideways"}, "invalid_direction"),
    ({"contact_id": "ADA", "call_sid": CALL_SID, "duration": -1}, "invalid_duration"),
    ({"contact_id": "ADA", "call_sid": CALL_SID, "duration": "ninety"}, "invalid_duration"),
    ({"contact_id": "ADA", "call_sid": CALL_SID, "duration": True}, "invalid_duration"),
    ({"contact_id": "ADA", "call_sid": CALL_SID, "duration": "²"}, "invalid_duration"),
    ({"contact_id": "ADA", "call_sid": CALL_SID, "notes": "n" * 32_001}, "invalid_notes"),
    ({"contact_id": "ADA", "call_sid": CALL_SID, "disposition": "d" * 256}, "invalid_disposition"),
    ({"contact_id": "ADA", "call_sid": CALL_SID, "subject": "s" * 256}, "invalid_subject"),
    ({"contact_id": "ADA", "call_sid": CALL_SID, "notes": {"a": 1}}, "invalid_notes"),
    ({"contact_id": "ADA", "call_sid": CALL_SID, "phone": "12"}, "invalid_phone"),
    ({"contact_id": "LEAD!", "call_sid": CALL_SID}, "invalid_contact_id"),
]


def test_bad_input_is_400_naming_the_field_before_any_salesforce_call(linked):
    ids = {"ADA": linked.ada, "LEAD": linked.lead, "LEAD!": linked.lead[:3] + "!" + linked.lead[4:]}
    before = _sf_calls(linked)
    for body, code in BAD_INPUT:  # one linked server for every case: each costs no Salesforce call
        body = {name: ids.get(value, value) if isinstance(value, str) else value
                for name, value in body.items()}
        answer = _log(linked, **body)
        assert (answer.status, answer.json()["error"]) == (400, code), (body, answer.body)
        field = code.removeprefix("invalid_").removeprefix("missing_")
        assert field in answer.json()["message"], answer.body
    assert _sf_calls(linked) == before


def test_longest_allowed_notes_are_accepted(linked):
    answer = _log(linked, contact_id=linked.ada, call_sid=CALL_SID, notes="n" * 32_000,
                  disposition="d" * 255)
    assert answer.status == 200, answer.body


def _refusal(answer, status: int, code: str, *words: str) -> None:
    assert answer.status == status, answer.body
    body = answer.json()
    assert body["error"] == code
    for word in words:
        assert word in body["message"]
    assert "Traceback" not in body["message"]


def test_required_field_missing_is_422_with_salesforces_message(linked):
    linked.sf.writes.rules.required["Task"] = {"CallDisposition"}
    answer = _log(linked, contact_id=linked.ada, call_sid=CALL_SID)
    _refusal(answer, 422, "salesforce_rejected", "REQUIRED_FIELD_MISSING",
             "Required fields are missing: [CallDisposition]")
    assert _tasks(linked) == []


def test_validation_rule_is_422_with_the_rules_own_message(linked):
    message = "Notes are required when the disposition is Escalated"
    linked.sf.writes.rules.validation_rules.append(
        ("Task", lambda task: task.get("CallDisposition") == "Escalated" and not task.get("Description"),
         message))
    answer = _log(linked, contact_id=linked.ada, call_sid=CALL_SID, disposition="Escalated")
    _refusal(answer, 422, "salesforce_rejected", "FIELD_CUSTOM_VALIDATION_EXCEPTION", message)
    fixed = _log(linked, contact_id=linked.ada, call_sid=CALL_SID, disposition="Escalated", notes="why")
    assert fixed.status == 200 and fixed.json()["created"] is True


def test_a_lead_that_does_not_exist_is_salesforces_invalid_cross_reference_404(linked):
    missing_lead = linked.lead[:-5] + "ZZZZZ"
    answer = _log(linked, contact_id=missing_lead[:15], call_sid=CALL_SID)
    _refusal(answer, 404, "salesforce_record_not_found", "INVALID_CROSS_REFERENCE_KEY", "WhoId")
    assert linked.sf.calls["sobject-create"] == 1


def test_a_contact_the_agent_cannot_see_is_404_before_any_write(linked):
    ghost = linked.ada[:9] + "zzzzzz"
    answer = _log(linked, contact_id=ghost, call_sid=CALL_SID)
    _refusal(answer, 404, "salesforce_record_not_found", ghost)
    alice = next(u for u in linked.sf.org.all("User") if u["Username"] == ALICE)
    linked.sf.writes.rules.hidden.add((alice["Id"], linked.ada))  # sharing keeps Ada from Alice
    unshared = _log(linked, contact_id=linked.ada, call_sid=CALL_SID)
    _refusal(unshared, 404, "salesforce_record_not_found", linked.ada)
    assert linked.sf.calls["sobject-create"] == 0


def test_no_create_permission_on_task_is_403(linked):
    alice = next(u for u in linked.sf.org.all("User") if u["Username"] == ALICE)
    linked.sf.writes.rules.denied.add((alice["Id"], "create", "Task"))
    answer = _log(linked, contact_id=linked.ada, call_sid=CALL_SID)
    _refusal(answer, 403, "salesforce_insufficient_access", "INSUFFICIENT_ACCESS_OR_READONLY")


def test_a_lead_not_shared_with_the_agent_is_403(linked):
    alice = next(u for u in linked.sf.org.all("User") if u["Username"] == ALICE)
    linked.sf.writes.rules.hidden.add((alice["Id"], linked.lead))
    answer = _log(linked, contact_id=linked.lead, call_sid=CALL_SID)
    _refusal(answer, 403, "salesforce_insufficient_access",
             "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY")


def test_no_edit_permission_on_the_logged_task_is_403(linked):
    assert _log(linked, contact_id=linked.ada, call_sid=CALL_SID).status == 200
    alice = next(u for u in linked.sf.org.all("User") if u["Username"] == ALICE)
    linked.sf.writes.rules.denied.add((alice["Id"], "edit", "Task"))
    again = _log(linked, contact_id=linked.ada, call_sid=CALL_SID, notes="more")
    _refusal(again, 403, "salesforce_insufficient_access", "insufficient access rights")


@pytest.mark.parametrize("answer", ['{"id": "00T/../../Account/001", "success": true}',
                                    '{"records": [{"Id": "00T?q=1", "WhoId": null}], "done": true}'])
def test_a_task_id_that_is_not_a_record_id_is_502_not_500(linked, answer):
    """Salesforce's Task id goes into URLs; one with "/" or "?" is an answer this server cannot use."""
    linked.sf.fail_next("sobject-create" if "success" in answer else "query", status=200,
                        body=answer.encode())
    _refusal(_log(linked, contact_id=linked.lead, call_sid=CALL_SID), 502, "salesforce_error", "record id")
    assert linked.sf.calls["sobject-update"] == 0


def test_salesforce_down_on_the_write_is_502(linked):
    linked.sf.fail_next("sobject-create", status=503)
    answer = _log(linked, contact_id=linked.ada, call_sid=CALL_SID)
    assert answer.status == 502 and answer.json()["error"] == "salesforce_error"


def test_expired_session_refreshes_once_and_the_write_goes_through(linked):
    linked.post("/get-user", {"Token": linked.token(ALICE)})
    linked.sf.expire_access_tokens()
    refreshes = len(linked.sf.refresh_log)
    answer = _log(linked, contact_id=linked.ada, call_sid=CALL_SID)
    assert answer.status == 200, answer.body
    assert len(linked.sf.refresh_log) == refreshes + 1
    assert len(_tasks(linked)) == 1


def test_invalid_grant_drops_the_link(linked):
    refresh_token = json.loads(linked.store_path.read_text())["agents"][ALICE]["refresh_token"]
    call(linked.sf.url, "POST", "/services/oauth2/revoke", body=f"token={refresh_token}".encode(),
         headers={"Content-Type": "application/x-www-form-urlencoded"})
    answer = _log(linked, contact_id=linked.ada, call_sid=CALL_SID)
    assert answer.status == 404 and answer.json()["error"] == "not_linked"
    assert ALICE not in json.loads(linked.store_path.read_text())["agents"]
    assert _tasks(linked) == []


def test_not_linked_agent_gets_404_and_no_write(crm):
    ada = next(c["Id"] for c in crm.sf.org.all("Contact") if c["Name"] == "Ada Lovelace")
    answer = _log(crm, contact_id=ada, call_sid=CALL_SID)
    assert answer.status == 404 and answer.json()["error"] == "not_linked"
