"""X-Twilio-Signature: the documented test vector, JSON bodies via bodySHA256, ports, tampering."""
from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from sfdcflex.runtime.signature import compute_signature, is_valid_signature

TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE", "Caller": "+14158675310", "Digits": "1234",
    "From": "+14158675310", "To": "+18005551212",
}
EXPECTED = "GvWf1cFY/Q7PnoempGyD5oXAezc="
BODY = b'{"CallSid":"CA1234567890ABCDE","Caller":"+12349013030"}'


def hmac_sha1_b64(token: str, message: str) -> str:
    return base64.b64encode(hmac.new(token.encode(), message.encode(), hashlib.sha1).digest()).decode()


def json_url(body: bytes) -> str:
    return f"https://example.com/myapp?bodySHA256={hashlib.sha256(body).hexdigest()}"


def test_twilio_documented_test_vector():
    assert compute_signature(TOKEN, URL, PARAMS) == EXPECTED
    assert is_valid_signature(TOKEN, URL, PARAMS, EXPECTED)


def test_parameter_order_does_not_matter():
    assert compute_signature(TOKEN, URL, dict(reversed(list(PARAMS.items())))) == EXPECTED


def test_repeated_form_keys_contribute_each_value_in_sorted_order():
    expected = hmac_sha1_b64(TOKEN, URL + "Aa" + "Bx" + "By")
    assert compute_signature(TOKEN, URL, {"B": ["y", "x"], "A": "a"}) == expected


class MultiDict(dict):
    """Flask's request.form: one key, several values, read back with getall()."""

    def getall(self, name: str) -> list[str]:
        return self[name]


def twilio_python_signature(token: str, uri: str, params: MultiDict) -> str:
    """twilio-python's RequestValidator.compute_signature, as published (twilio/request_validator.py):
    names in sorted(set(params)), and for each, sorted(set(values)) from getall()."""
    message = uri
    for name in sorted(set(params)):
        for value in sorted(set(params.getall(name))):
            message += name + value
    return hmac_sha1_b64(token, message)


def test_repeated_form_keys_match_twilio_pythons_request_validator():
    # A repeated key whose values repeat too: each distinct value counts once, in sorted order.
    form = MultiDict({"MediaUrl": ["https://m/2", "https://m/1", "https://m/2"], "To": ["+1"]})
    expected = twilio_python_signature(TOKEN, URL, form)
    assert compute_signature(TOKEN, URL, {"MediaUrl": form["MediaUrl"], "To": "+1"}) == expected
    assert is_valid_signature(TOKEN, URL, {"MediaUrl": form["MediaUrl"], "To": "+1"}, expected)


def test_json_body_is_signed_through_its_hash_in_the_url():
    url = json_url(BODY)
    signature = hmac_sha1_b64(TOKEN, url)   # the URL alone, as Twilio documents for JSON
    assert is_valid_signature(TOKEN, url, None, signature, body=BODY)
    assert is_valid_signature(TOKEN, url, {"ignored": "x"}, signature, body=BODY)


def test_changed_json_body_is_rejected():
    url = json_url(BODY)
    signature = hmac_sha1_b64(TOKEN, url)
    assert not is_valid_signature(TOKEN, url, None, signature, body=BODY.replace(b"3030", b"3031"))
    assert not is_valid_signature(TOKEN, url, None, signature, body=None)


def test_changed_body_hash_in_the_url_breaks_the_signature():
    url = json_url(BODY)
    signature = hmac_sha1_b64(TOKEN, url)
    other_body = b'{"CallSid":"CAevil"}'
    assert not is_valid_signature(TOKEN, json_url(other_body), None, signature, body=other_body)


@pytest.mark.parametrize("change", [
    {"Digits": "1235"}, {"Extra": "1"}, {"To": "+18005551213"},
])
def test_changed_form_parameter_is_rejected(change):
    assert not is_valid_signature(TOKEN, URL, {**PARAMS, **change}, EXPECTED)


def test_removed_form_parameter_is_rejected():
    params = dict(PARAMS)
    del params["Digits"]
    assert not is_valid_signature(TOKEN, URL, params, EXPECTED)


@pytest.mark.parametrize("signature", [None, "", "GvWf1cFY/Q7PnoempGyD5oXAezd=", "é", EXPECTED[:-1]])
def test_missing_or_wrong_signature_is_rejected(signature):
    assert not is_valid_signature(TOKEN, URL, PARAMS, signature)


def test_other_auth_token_or_url_is_rejected():
    assert not is_valid_signature("54321", URL, PARAMS, EXPECTED)
    assert not is_valid_signature(TOKEN, URL.replace("foo=1", "foo=2"), PARAMS, EXPECTED)
    assert not is_valid_signature(TOKEN, URL.replace("https", "http"), PARAMS, EXPECTED)


def test_default_port_is_accepted_both_ways():
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert is_valid_signature(TOKEN, with_port, PARAMS, EXPECTED)
    signed_with_port = compute_signature(TOKEN, with_port, PARAMS)
    assert is_valid_signature(TOKEN, URL, PARAMS, signed_with_port)
    http_url = "http://127.0.0.1/hook"
    assert is_valid_signature(TOKEN, "http://127.0.0.1:80/hook", None,
                              compute_signature(TOKEN, http_url))


def test_a_non_default_port_must_match_exactly():
    assert not is_valid_signature(TOKEN, "https://mycompany.com:8443/myapp.php?foo=1&bar=2",
                                  PARAMS, EXPECTED)
