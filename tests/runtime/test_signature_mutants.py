"""Request signatures and phone errors: behaviour mutation testing found unchecked (issue 18).

Each test names the surviving mutants it kills; the equivalent ones are listed in README's
reliability report.
"""
from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from sfdcflex.runtime.signature import is_valid_signature

TOKEN = "12345"


def _twilio(url: str, params: dict[str, str] | None = None) -> str:
    # Twilio's documented algorithm, independent of sfdcflex.runtime.signature.
    data = url + "".join(k + (params or {})[k] for k in sorted(params or {}))
    return base64.b64encode(hmac.new(TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()


def test_an_empty_json_body_is_checked_against_the_hash_of_nothing():
    """_body_hash_matches mutant 12 (an empty body hashed as something else)."""
    url = "https://example.com/hook?bodySHA256=" + hashlib.sha256(b"").hexdigest()
    assert is_valid_signature(TOKEN, url, None, _twilio(url), body=b"")
    assert is_valid_signature(TOKEN, url, None, _twilio(url), body=None)


@pytest.mark.parametrize("claimed", ["é" * 64, "€"])
def test_a_non_ascii_body_hash_is_refused_not_a_crash(claimed):
    """_body_hash_matches mutants 17, 22, 23 (strict or unknown error handler raises)."""
    url = f"https://example.com/hook?bodySHA256={claimed}"
    assert is_valid_signature(TOKEN, url, None, _twilio(url), body=b"{}") is False


def test_the_default_port_is_toggled_on_an_ipv6_host():
    """_port_variants mutant 14 (index for rindex cuts "[::1]:443" at its first colon)."""
    signed = _twilio("https://[::1]/hook")
    assert is_valid_signature(TOKEN, "https://[::1]:443/hook", {}, signed)
    assert is_valid_signature(TOKEN, "https://user:pw@example.com:443/hook", {},
                              _twilio("https://user:pw@example.com/hook"))


@pytest.mark.parametrize("signature", [b"c2lnbmF0dXJl", ["sig"], 7, "", None])
def test_a_signature_that_is_not_a_non_empty_string_is_refused(signature):
    """is_valid_signature mutant 1 (`and` for `or` lets bytes and lists through to .encode)."""
    assert is_valid_signature(TOKEN, "https://example.com/hook", {}, signature) is False


def test_a_bad_phone_says_invalid_phone(crm):
    """phone._invalid mutants 2 and 4 (the error code dropped): README documents invalid_phone."""
    token = crm.token("alice@example.com")
    for body in ({"phone": "+999 1234"}, {"phone": "415 555 0101", "country": "ZZ"},
                 {"phone": "415 555 0101", "country": "USA"}, {"phone": 4155550101}):
        answer = crm.post("/get-contact", {"Token": token, **body})
        assert answer.status == 400 and answer.json()["error"] == "invalid_phone", (body, answer.body)
