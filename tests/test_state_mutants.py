"""OAuth state behaviour that mutation testing found unchecked (mutmut 3.8, issue 18).

Each test names the surviving mutants it kills; the equivalent ones are listed in README's
reliability report.
"""
from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from sfdcflex.oauth_state import MAX_STATE_LENGTH, StateSigner, load_or_create_secret
from sfdcflex.runtime.errors import BadRequest, ConfigError, Forbidden


@pytest.mark.parametrize("state", ["garbage", "a.b.c", "x" * 3000])
def test_a_malformed_state_is_400_invalid_state_exactly(crm, state):
    """_bad_state mutant 5 (another error code)."""
    answer = crm.post("/oauth-callback", {"Token": crm.token("alice@example.com"), "code": "c", "state": state})
    assert answer.status == 400 and answer.json()["error"] == "invalid_state"


def test_a_damaged_secret_file_says_exactly_what_to_do(tmp_path):
    """_read_secret mutant 16 (the advice garbled)."""
    path = tmp_path / "state-secret"
    path.write_text("not hex\n")
    with pytest.raises(ConfigError) as raised:
        load_or_create_secret(path)
    assert str(raised.value) == (f"config: the state secret file {path} is damaged; "
                                 "delete it to have a new one made")


# --- StateSigner's refusals, each exactly ------------------------------------------------------

SECRET = b"k" * 32


def _sign_raw(payload: bytes) -> str:
    encode = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()  # noqa: E731
    return encode(payload) + "." + encode(hmac.new(SECRET, payload, hashlib.sha256).digest())


def test_the_pkce_verifier_is_derived_as_documented():
    """code_verifier 4, 5, 8: base64url(HMAC-SHA256(secret, "pkce:" + nonce)), unpadded, so any
    instance (of any version) holding the secret finishes a link another one started."""
    signer = StateSigner(SECRET)
    link = signer.verify(signer.sign("alice@example.com"))
    raw = hmac.new(SECRET, b"pkce:" + link.nonce.encode(), hashlib.sha256).digest()
    assert signer.code_verifier(link) == base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _refusal(signer: StateSigner, state: object) -> tuple[type, str, str]:
    with pytest.raises((BadRequest, Forbidden)) as raised:
        signer.verify(state)
    return type(raised.value), raised.value.code, raised.value.message


def test_each_refusal_has_its_status_code_and_words():
    """verify 4-12, 21-24, 29-31, 42-45, 51-57; _claims 23-25, 30 (codes and messages)."""
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
    """verify 8 (`>=` refuses a state of exactly MAX_STATE_LENGTH)."""
    signer = StateSigner(SECRET)
    state = "a" * (MAX_STATE_LENGTH - 2) + ".b"
    assert _refusal(signer, state)[2] != "the OAuth state is too long"


def test_defaults_a_ten_minute_life_and_a_16_byte_nonce():
    """__init__ 1 (another ttl), sign 13 (another nonce size)."""
    link = StateSigner(SECRET, clock=lambda: 1000.0).verify(StateSigner(SECRET, clock=lambda: 1000.0).sign("a"))
    assert link.expires_at == 1600.0 and len(link.nonce) == 22


def test_the_secret_and_identity_checks_say_why():
    """__init__ 4-8, sign 4-6 (bounds and messages)."""
    assert StateSigner(b"s" * 16).sign("a")
    with pytest.raises(ValueError, match="^the state secret must be at least 16 bytes$"):
        StateSigner(b"s" * 15)
    with pytest.raises(ValueError, match="^identity must be a non-empty string$"):
        StateSigner(SECRET).sign("")
