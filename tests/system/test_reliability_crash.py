"""Crash safety of the JSON token store: SIGKILL the server mid-burst of token writes, 20 times.

Each round expires every access token at the Salesforce stand-in, starts `run.py`, fires a
lookup for every agent (each one refreshes and writes its rotated tokens) and relinks a few
agents, then kills the process at a random point of the burst. After every kill the file must
parse and every agent must hold exactly its old pair or a new working pair: never a mix, never
missing.
"""
from __future__ import annotations

import collections
import json
import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.http import call
from tests.support.processes import ServerProcess, settings_for, wait_until, write_env_file
from sfdcflex.demo.standins.salesforce import submit_consent

AGENTS = 24
ROUNDS = 12
SEED = 7


def _stored(crm) -> dict[str, tuple[str, str]]:
    document = json.loads(crm.store_path.read_text())  # must parse after every kill
    return {identity: (entry["access_token"], entry["refresh_token"])
            for identity, entry in document["agents"].items()}


def _link_through(url: str, crm, identity: str) -> None:
    """The browser's link flow against the server process (its own /auth and /oauth-callback)."""
    start = call(url, "POST", "/auth", body={"Token": crm.token(identity), "origin": url}, timeout=5)
    location = submit_consent(start.json()["authorize_url"], identity)
    call(url, "GET", location[len(url):], timeout=5)


def _lookup(url: str, crm, identity: str) -> None:
    call(url, "POST", "/get-contact", body={"Token": crm.token(identity), "phone": "+14155550101"}, timeout=5)


def _quietly(step, *args) -> None:
    try:
        step(*args)
    except (OSError, KeyError, ValueError, AssertionError):
        pass  # the server was killed under this request: that is the point


def _settle(crm) -> None:
    """Wait until refreshes sent just before the kill have reached the stand-in (bounded).

    A refresh already on the wire when the process died still rotates the token at
    Salesforce; counting it as unspent would leave a dead link in place for the next round.
    """
    seen = [len(crm.sf.refresh_log), 0]

    def quiet() -> bool:
        count = len(crm.sf.refresh_log)
        seen[1] = seen[1] + 1 if count == seen[0] else 0
        seen[0] = count
        return seen[1] >= 5  # unchanged for five polls in a row

    wait_until(quiet, 5.0, 0.03)


def _verdict(crm, user_ids: dict, identity: str, old: tuple[str, str], now: tuple[str, str] | None,
             spent: set[str]) -> str:
    """old / old-but-spent / new, or what is wrong with the agent's stored pair."""
    if now is None:
        return "missing"
    if now == old:
        # Salesforce rotated, but the process died before the new pair reached the disk.
        return "old, refresh token spent" if old[1] in spent else "old"
    access_user = crm.sf.grants.user_for(now[0])  # every access token from before the round is expired
    if access_user == user_ids[identity] and now[1] not in spent:
        return "new"
    return "mixed or stale pair"


@pytest.mark.slow  # twelve SIGKILLed server processes
def test_sigkill_mid_burst_twelve_times_leaves_old_or_new_tokens(crm_factory, tmp_path):
    crm = crm_factory()
    user_ids = {}
    for n in range(AGENTS):
        identity = f"agent{n:02d}@example.com"
        crm.iam.add_agent(identity, f"Agent {n}")
        user_ids[identity] = crm.sf.add_user(identity, f"Agent Number{n}")["user_id"]
        crm.link(identity)
    env_file = write_env_file(tmp_path / "crash.env", settings_for(crm.sf, crm.iam, crm.sync, crm.store_path))
    rng = random.Random(SEED)
    verdicts: collections.Counter[str] = collections.Counter()
    for round_ in range(ROUNDS):
        old = _stored(crm)
        crm.sf.expire_access_tokens()
        refreshes = len(crm.sf.refresh_log)
        server = ServerProcess.start(env_file)
        relinked = rng.sample(sorted(user_ids), 4)
        kill_after = rng.randint(1, AGENTS - len(relinked) - 1)  # a relinked agent may not refresh
        with ThreadPoolExecutor(AGENTS + len(relinked)) as pool:
            for identity in user_ids:
                pool.submit(_quietly, _lookup, server.url, crm, identity)
            for identity in relinked:
                pool.submit(_quietly, _link_through, server.url, crm, identity)
            assert wait_until(lambda: len(crm.sf.refresh_log) >= refreshes + kill_after, 10), round_
            server.kill()
        _settle(crm)
        now, spent = _stored(crm), set(crm.sf.refresh_log)
        for identity in user_ids:
            verdict = _verdict(crm, user_ids, identity, old[identity], now.get(identity), spent)
            verdicts[verdict] += 1
            assert verdict.startswith(("old", "new")), (round_, identity, verdict)
            if verdict == "old, refresh token spent":
                crm.link(identity)  # that link is gone at Salesforce; start the next round whole
    print(f"\ncrash safety: {ROUNDS} SIGKILLs mid-burst, {AGENTS} agents each: {dict(verdicts)}")
    final = ServerProcess.start(env_file)
    try:
        for identity in user_ids:
            answer = call(final.url, "POST", "/get-contact",
                          body={"Token": crm.token(identity), "phone": "+14155550101"})
            assert answer.status == 200, (identity, answer.body)
    finally:
        final.stop()
