"""The JSON store's used OAuth states: shared through their own file, a few per agent, never in
the token file."""
from __future__ import annotations

import json
import logging
import time

import pytest

from sfdcflex.runtime.errors import TooManyRequests
from sfdcflex.store import JsonFileTokenStore
from sfdcflex.used_states import MAX_STATES_PER_AGENT, MAX_USED_STATES, UsedStates

ANN, BOB = "ann@example.com", "bob@example.com"


def _held(path) -> dict:
    return json.loads(path.read_text())["states"]


def test_used_states_are_shared_between_processes_until_they_expire(tmp_path):
    """A state used through one store is refused through another on the same file; expired
    ones are forgotten."""
    path = tmp_path / "tokens.json"
    mine, theirs = JsonFileTokenStore(path), JsonFileTokenStore(path)
    later = time.time() + 600
    assert mine.claim_state(ANN, "nonce-1", later) is True
    assert theirs.claim_state(ANN, "nonce-1", later) is False and mine.claim_state(ANN, "nonce-1", later) is False
    assert mine.claim_state(ANN, "spent", time.time() - 1) is True      # its state has expired already
    assert theirs.claim_state(BOB, "nonce-2", later) is True
    assert _held(tmp_path / "tokens.json.used-states") == {ANN: {"nonce-1": later}, BOB: {"nonce-2": later}}


def test_one_agent_keeps_only_their_newest_few_and_cannot_lock_others_out(tmp_path):
    """An agent claiming state after state (POST /auth, then a junk callback) holds at most a
    few: their newest are still refused a second time, and other agents sign in as ever."""
    path = tmp_path / "used-states"
    states = UsedStates(path)
    now = time.time()
    for n in range(MAX_STATES_PER_AGENT * 4):
        assert states.claim(ANN, f"ann-{n}", now + 300 + n) is True
    newest = [f"ann-{n}" for n in range(MAX_STATES_PER_AGENT * 3, MAX_STATES_PER_AGENT * 4)]
    assert sorted(_held(path)[ANN]) == sorted(newest)
    assert all(states.claim(ANN, nonce, now + 600) is False for nonce in newest)
    assert states.claim(BOB, "bob-1", now + 600) is True


def test_past_the_cap_for_every_agent_a_new_sign_in_is_429(tmp_path):
    """The file is bounded: with MAX_USED_STATES sign-ins under way, a new agent's is 429 with
    Retry-After; an agent at their own few still signs in, dropping their oldest."""
    path = tmp_path / "used-states"
    later = time.time() + 600
    crowd = {f"agent-{n}": {"nonce": later} for n in range(MAX_USED_STATES - MAX_STATES_PER_AGENT - 1)}
    crowd[ANN] = {f"ann-{n}": later - n for n in range(MAX_STATES_PER_AGENT)}
    path.write_text(json.dumps({"version": 1, "states": crowd}))
    states = UsedStates(path)
    assert states.claim(BOB, "bob-1", later) is True                # the 10,000th
    with pytest.raises(TooManyRequests) as raised:
        states.claim("carol@example.com", "carol-1", later)
    assert {name.lower(): value for name, value in raised.value.headers.items()} == {"retry-after": "60"}
    assert raised.value.body() == {
        "error": "too_many_requests",
        "message": "Too many Salesforce sign-ins at once; try again in a few minutes"}
    assert states.claim(ANN, "ann-new", later) is True
    assert f"ann-{MAX_STATES_PER_AGENT - 1}" not in _held(path)[ANN]
    assert sum(len(held) for held in _held(path).values()) == MAX_USED_STATES


def test_a_damaged_file_is_started_afresh_and_logged(tmp_path, caplog):
    """Nothing in it is worth an outage: a torn write starts it afresh, with a log line."""
    path = tmp_path / "used-states"
    path.write_text('{"version": 1, "states": {"ann": {"n": ')
    with caplog.at_level(logging.ERROR, logger="sfdcflex"):
        assert UsedStates(path).claim(ANN, "nonce", time.time() + 600) is True
    assert caplog.messages == [f"the used OAuth states file {path} is damaged; it is started afresh"]
    assert list(_held(path)) == [ANN]


def test_a_claim_leaves_the_token_file_and_its_stamp_alone(tmp_path):
    """Claims neither rewrite the agents' tokens nor change the stamp that lets every process
    trust its cached links: a flood of sign-ins costs no other request a read of the token file."""
    path = tmp_path / "tokens.json"
    store = JsonFileTokenStore(path)
    saved = store.put(ANN, "access-1", "refresh-1")
    before = (path.read_bytes(), path.stat().st_mtime_ns, path.with_name("tokens.json.lock").read_bytes())
    for n in range(3):
        assert store.claim_state(BOB, f"nonce-{n}", time.time() + 600)
    assert (path.read_bytes(), path.stat().st_mtime_ns, path.with_name("tokens.json.lock").read_bytes()) == before
    assert store.is_current(ANN, saved.revision)
