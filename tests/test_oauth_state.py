"""Signed OAuth state, the derived PKCE verifier, and the secret kept on disk."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
import threading

import pytest

from sfdcflex.runtime.errors import BadRequest, ConfigError, Forbidden
from sfdcflex.oauth_state import (LinkState, StateSigner, code_challenge,
                                  load_or_create_secret)

SECRET = b"s" * 32


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_state_round_trips_identity_origin_and_expiry():
    clock = FakeClock()
    signer = StateSigner(SECRET, ttl=600, clock=clock)
    state = signer.sign("agent@example.com", origin="https://flex.twilio.com")
    assert re.fullmatch(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+", state)   # URL-safe as is
    assert len(state) < 200
    link = signer.verify(state)
    assert link.identity == "agent@example.com"
    assert link.origin == "https://flex.twilio.com"
    assert link.expires_at == pytest.approx(clock.now + 600, abs=1)
    assert signer.verify(signer.sign("agent@example.com")).origin is None


def test_another_instance_with_the_same_secret_accepts_the_state():
    state = StateSigner(SECRET).sign("agent@example.com")
    other = StateSigner(SECRET)
    assert other.verify(state).identity == "agent@example.com"


def test_each_state_has_a_fresh_nonce():
    signer = StateSigner(SECRET)
    nonces = {signer.verify(signer.sign("a")).nonce for _ in range(20)}
    assert len(nonces) == 20


def test_expired_state_is_forbidden():
    clock = FakeClock()
    signer = StateSigner(SECRET, ttl=600, clock=clock)
    state = signer.sign("agent@example.com")
    clock.now += 601
    with pytest.raises(Forbidden) as caught:
        signer.verify(state)
    assert caught.value.status == 403
    assert "expired" in caught.value.message


def test_state_signed_with_another_secret_is_forbidden():
    foreign = StateSigner(b"x" * 32).sign("agent@example.com")
    with pytest.raises(Forbidden):
        StateSigner(SECRET).verify(foreign)


def test_changing_the_identity_breaks_the_signature():
    signer = StateSigner(SECRET)
    payload, mac = signer.sign("victim@example.com").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["i"] = "attacker@example.com"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(Forbidden):
        signer.verify(f"{forged}.{mac}")


@pytest.mark.parametrize("state", [None, "", 42, "no-dot-here!", "a.b.c" * 1000, "$$$.%%%"])
def test_missing_or_malformed_state_is_a_bad_request(state):
    with pytest.raises(BadRequest) as caught:
        StateSigner(SECRET).verify(state)
    assert caught.value.status == 400


def test_pkce_verifier_is_rfc7636_shaped_and_recomputable():
    signer = StateSigner(SECRET)
    link = signer.verify(signer.sign("agent@example.com"))
    verifier = signer.code_verifier(link)
    assert re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", verifier)
    assert StateSigner(SECRET).code_verifier(link) == verifier
    assert StateSigner(b"x" * 32).code_verifier(link) != verifier
    other = LinkState(link.identity, "another-nonce", link.expires_at, None)
    assert signer.code_verifier(other) != verifier


def test_verifier_never_travels_in_the_state():
    signer = StateSigner(SECRET)
    state = signer.sign("agent@example.com")
    verifier = signer.code_verifier(signer.verify(state))
    assert verifier not in state
    assert verifier not in base64.urlsafe_b64decode(state.split(".")[0] + "==").decode()


def test_code_challenge_matches_rfc7636_appendix_b():
    assert code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == \
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    expected = base64.urlsafe_b64encode(hashlib.sha256(b"abc").digest()).rstrip(b"=").decode()
    assert code_challenge("abc") == expected


def test_secret_is_created_private_and_reused(tmp_path):
    path = tmp_path / "data" / "state_secret"
    secret = load_or_create_secret(path)
    assert len(secret) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_or_create_secret(path) == secret
    assert [p.name for p in path.parent.iterdir()] == ["state_secret"]   # no temp files left


def test_concurrent_first_runs_agree_on_one_secret(tmp_path):
    path = tmp_path / "state_secret"
    results, start = [], threading.Barrier(6)

    def create() -> None:
        start.wait(timeout=5)
        results.append(load_or_create_secret(path))

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(results) == 6 and len(set(results)) == 1


def test_damaged_secret_file_is_a_config_error_without_its_content(tmp_path):
    path = tmp_path / "state_secret"
    path.write_text("not-hex-topsecretvalue")
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError) as caught:
        load_or_create_secret(path)
    assert str(path) in str(caught.value)
    assert "topsecretvalue" not in str(caught.value)
