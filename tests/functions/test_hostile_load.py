"""The integration under hostile load: body limits from Content-Length, and bad tokens that cost
one IAM call however often they come."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

PHONE = "+14155550101"


def test_a_flood_of_one_bad_token_costs_one_iam_call(crm):
    before = crm.iam.calls["validate"]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: crm.post("/get-contact", {"Token": "garbage", "phone": PHONE}),
                                range(60)))
    assert {a.status for a in answers} == {403}
    assert {a.json()["error"] for a in answers} == {"invalid_token"}
    assert crm.iam.calls["validate"] - before == 1


def test_the_integrations_functions_take_64_kib_bodies_at_most(crm):
    near = crm.post("/get-contact", {"Token": "garbage", "phone": "1" * 60_000})
    assert near.status == 403  # read, parsed, and refused for its token
    over = crm.post("/get-contact", {"Token": "garbage", "phone": "1" * 70_000})
    assert over.status == 413 and over.json()["error"] == "payload_too_large"
    alias = crm.post("/get-contact-account-data", {"Token": "garbage", "phone": "1" * 70_000})
    assert alias.status == 413


def test_the_body_limit_is_a_setting(crm_factory):
    crm = crm_factory(MAX_FUNCTION_BODY="2048")
    assert crm.post("/get-user", {"Token": "t" * 3000}).status == 413
    assert crm.post("/get-user", {"Token": "t" * 1000}).status == 403


def test_a_slow_iam_check_does_not_hold_the_concurrency_slot(crm_factory):
    from sfdcflex.runtime.app import Limits
    crm = crm_factory(limits=Limits(timeout=10, max_concurrency=1))  # one invocation at a time
    before = crm.iam.calls["validate"]
    release = threading.Event()
    crm.iam.fail_next("validate", hold=release)  # alice's check waits at IAM until released
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(crm.post, "/get-user", {"Token": crm.token("alice@example.com")})
        try:
            deadline = time.monotonic() + 5
            while crm.iam.calls["validate"] == before and time.monotonic() < deadline:
                time.sleep(0.005)  # polling the stand-in's counter: the call has no event to wait on
            other = crm.post("/get-user", {"Token": "garbage"})
            assert other.status == 403  # not 429: the held check gave its slot back
        finally:
            release.set()
        assert waiting.result(10).status != 429
