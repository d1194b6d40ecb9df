"""Connections dropped at every step of an OAuth refresh: no refresh token is ever sent twice.

Salesforce rotates refresh tokens and revokes the whole chain when a spent one comes back, so
the pooled transport must never resend the refresh_token grant, even when the kept-alive
connection it would use dies, and the reads around it (query, search, userinfo) may be retried.
"""
from __future__ import annotations

import json

import pytest

ALICE = "alice@example.com"
ADA = "+14155550101"


@pytest.fixture
def warm(crm):
    """Alice linked, a lookup done (kept-alive connections now open), her access token expired."""
    crm.link(ALICE)
    token = crm.token(ALICE)
    assert crm.post("/get-contact", {"Token": token, "phone": "+12125550103"}).status == 200
    crm.sf.expire_access_tokens()
    return crm, token


def _stored_refresh(crm) -> str:
    return json.loads(crm.store_path.read_text())["agents"][ALICE]["refresh_token"]


def _lookup(crm, token: str):
    return crm.post("/get-contact", {"Token": token, "phone": ADA}, timeout=20)


def test_idle_connections_dropped_before_the_refresh(warm):
    crm, token = warm
    crm.sf.drop_connections()
    before = len(crm.sf.refresh_presented)
    assert _lookup(crm, token).status == 200
    presented = crm.sf.refresh_presented[before:]
    assert len(presented) == 1 and crm.sf.refresh_log[-1] == presented[0]
    assert _stored_refresh(crm) not in crm.sf.refresh_log


@pytest.mark.parametrize("step", ["on arrival", "after rotating", "half the answer"])
def test_a_refresh_dropped_mid_call_is_sent_once_and_answered_502(warm, step):
    crm, token = warm
    fault = {"on arrival": {"reset": True}, "after rotating": {"drop": "after"},
             "half the answer": {"drop": "truncate"}}[step]
    crm.sf.fail_next("token", **fault)
    before, stored = len(crm.sf.refresh_presented), _stored_refresh(crm)
    answer = _lookup(crm, token)
    assert answer.status == 502 and answer.json()["error"] == "salesforce_error", answer.body
    assert crm.sf.refresh_presented[before:] == [stored]  # once, never resent on a new connection
    assert _stored_refresh(crm) == stored  # the tokens in the store are untouched
    if step == "on arrival":
        # Salesforce never acted on it, so the next request may (and must) present it again.
        assert stored not in crm.sf.refresh_log
        assert _lookup(crm, token).status == 200
        assert len(crm.sf.refresh_log) == len(set(crm.sf.refresh_log))
    else:
        # Salesforce rotated and the answer was lost: the new refresh token is gone with it.
        assert crm.sf.refresh_log[-1] == stored


def test_every_call_of_a_refreshing_lookup_loses_its_connection_once(warm):
    """The kept-alive connection dies under each read around the refresh; the refresh itself
    goes out on a fresh (or just-used) connection and is presented exactly once."""
    crm, token = warm
    for name in ("search", "query", "userinfo"):
        crm.sf.fail_next(name, reset=True)
    before, stored = len(crm.sf.refresh_presented), _stored_refresh(crm)
    answer = _lookup(crm, token)
    assert answer.status == 200, answer.body
    assert crm.sf.refresh_presented[before:] == [stored]
    assert len(crm.sf.refresh_log) == len(set(crm.sf.refresh_log))
