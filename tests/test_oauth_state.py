"""Signed OAuth state, the derived PKCE verifier, and the secret kept on disk."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import stat
import threading

import pytest

from sfdcflex.runtime.errors import BadRequest, ConfigError, Forbidden
from sfdcflex.oauth_state import (MAX_STATE_LENGTH, LinkState, StateSigner, code_challenge,
                                  load_or_create_secret)
from tests.support.clocks import FakeClock

SECRET = b"s" * 32


def test_state_round_trips_identity_origin_and_expiry():
    clock = FakeClock(1_700_000_000.0)
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
    clock = FakeClock(1_700_000_000.0)
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


def test_secret_is_created_private_and_reused_in_a_folder_made_for_it(tmp_path):
    path = tmp_path / "new" / "deeper" / "state_secret"
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


@pytest.mark.parametrize("content", ["", "abcd\n", "00" * 31, "zz" * 32, "\xff\xfe" * 40])
def test_a_secret_file_too_short_or_not_hex_is_a_config_error(tmp_path, content):
    path = tmp_path / "state-secret"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(ConfigError) as raised:
        load_or_create_secret(path)
    assert "delete it" in str(raised.value)
    assert path.read_bytes() == content.encode("latin-1")   # left for the operator


def test_a_damaged_secret_file_says_exactly_what_to_do(tmp_path):
    """The operator is told which file and what to do with it, in these words."""
    path = tmp_path / "state-secret"
    path.write_text("not hex\n")
    with pytest.raises(ConfigError) as raised:
        load_or_create_secret(path)
    assert str(raised.value) == (f"config: the state secret file {path} is damaged; "
                                 "delete it to have a new one made")


def _sign_raw(payload: bytes) -> str:
    encode = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()  # noqa: E731
    return encode(payload) + "." + encode(hmac.new(SECRET, payload, hashlib.sha256).digest())


def test_the_pkce_verifier_is_derived_as_documented():
    """base64url(HMAC-SHA256(secret, "pkce:" + nonce)), unpadded, so any instance (of any
    version) holding the secret finishes a link another one started."""
    signer = StateSigner(SECRET)
    link = signer.verify(signer.sign("alice@example.com"))
    raw = hmac.new(SECRET, b"pkce:" + link.nonce.encode(), hashlib.sha256).digest()
    assert signer.code_verifier(link) == base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _refusal(signer: StateSigner, state: object) -> tuple[type, str, str]:
    with pytest.raises((BadRequest, Forbidden)) as raised:
        signer.verify(state)
    return type(raised.value), raised.value.code, raised.value.message


def test_each_refusal_has_its_status_code_and_words():
    """Every way a state is refused has its own status, error code and message."""
    signer = StateSigner(SECRET, clock=lambda: 1000.0)
    good = signer.sign("alice@example.com")
    payload = good.partition(".")[0]
    mac = base64.urlsafe_b64encode(hashlib.sha256(b"x").digest()).rstrip(b"=").decode()
    unsigned_json = base64.urlsafe_b64encode(b"[1]").rstrip(b"=").decode()
    signed_junk = unsigned_json + "." + base64.urlsafe_b64encode(
        hmac.new(SECRET, b"[1]", hashlib.sha256).digest()).rstrip(b"=").decode()
    cases = {
        "": (BadRequest, "invalid_state", "the OAuth state is missing"),
        None: (BadRequest, "invalid_state", "the OAuth state is missing"),
        "x" * (MAX_STATE_LENGTH + 1): (BadRequest, "invalid_state", "the OAuth state is too long"),
        "a": (BadRequest, "invalid_state", "the OAuth state is malformed"),
        "YQ": (BadRequest, "invalid_state", "the OAuth state is malformed"),      # decodes, no dot
        ".YQ": (BadRequest, "invalid_state", "the OAuth state is malformed"),     # empty payload
        _sign_raw(b'{"i": 5, "n": "x", "e": 9999999999}'): (BadRequest, "invalid_state",
                                                             "the OAuth state is malformed"),
        "a.b": (BadRequest, "invalid_state", "the OAuth state is malformed"),
        signed_junk: (BadRequest, "invalid_state", "the OAuth state is malformed"),
        f"{payload}.{mac}": (Forbidden, "invalid_state", "the OAuth state was not issued by this server"),
        # Text after the MAC is not base64url (a dot): malformed, before any MAC is compared.
        good + ".x": (BadRequest, "invalid_state", "the OAuth state is malformed"),
    }
    for state, expected in cases.items():
        assert _refusal(signer, state) == expected, state
    later = StateSigner(SECRET, clock=lambda: 1600.0)   # exactly at the expiry: expired
    assert _refusal(later, good) == (Forbidden, "expired_state", "the sign-in link expired; start linking again")
    assert StateSigner(SECRET, clock=lambda: 1599.0).verify(good).identity == "alice@example.com"


def test_a_state_of_exactly_the_maximum_length_is_read_not_refused_as_too_long():
    """The length bound is inclusive: a state of exactly MAX_STATE_LENGTH is read."""
    signer = StateSigner(SECRET)
    state = "a" * (MAX_STATE_LENGTH - 2) + ".b"
    assert _refusal(signer, state)[2] != "the OAuth state is too long"


def test_defaults_a_ten_minute_life_and_a_16_byte_nonce():
    """A state lives ten minutes by default and carries a 16-byte nonce."""
    link = StateSigner(SECRET, clock=lambda: 1000.0).verify(StateSigner(SECRET, clock=lambda: 1000.0).sign("a"))
    assert link.expires_at == 1600.0 and len(link.nonce) == 22


def test_the_secret_and_identity_checks_say_why():
    """A secret under 16 bytes (or not bytes) and an empty identity are refused, saying why."""
    assert StateSigner(b"s" * 16).sign("a")
    with pytest.raises(ValueError, match="^the state secret must be at least 16 bytes$"):
        StateSigner(b"s" * 15)
    with pytest.raises(ValueError):
        StateSigner("s" * 48)
    with pytest.raises(ValueError, match="^identity must be a non-empty string$"):
        StateSigner(SECRET).sign("")
