"""X-Twilio-Signature: the documented test vector, JSON bodies via bodySHA256, ports, tampering;
and protected functions, which answer only signed requests (through App.dispatch in process,
one over real HTTP)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import urlencode

import pytest

from sfdcflex.runtime.app import Request
from sfdcflex.runtime.signature import compute_signature, is_valid_signature
from tests.support.served import AUTH_TOKEN

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


def signed(url: str, params: dict[str, str] | None = None, token: str = AUTH_TOKEN) -> str:
    """Twilio's documented algorithm, independent of sfdcflex.runtime.signature."""
    params = params or {}
    return hmac_sha1_b64(token, url + "".join(k + params[k] for k in sorted(params)))


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


def test_an_empty_json_body_is_checked_against_the_hash_of_nothing():
    url = "https://example.com/hook?bodySHA256=" + hashlib.sha256(b"").hexdigest()
    assert is_valid_signature(TOKEN, url, None, signed(url, token=TOKEN), body=b"")
    assert is_valid_signature(TOKEN, url, None, signed(url, token=TOKEN), body=None)


@pytest.mark.parametrize("claimed", ["é" * 64, "€"])
def test_a_non_ascii_body_hash_is_refused_not_a_crash(claimed):
    url = f"https://example.com/hook?bodySHA256={claimed}"
    assert is_valid_signature(TOKEN, url, None, signed(url, token=TOKEN), body=b"{}") is False


def test_the_default_port_is_toggled_on_an_ipv6_host():
    """The port is found at the host's last colon: "[::1]:443" is the host [::1] on port 443."""
    assert is_valid_signature(TOKEN, "https://[::1]:443/hook", {}, signed("https://[::1]/hook", token=TOKEN))
    assert is_valid_signature(TOKEN, "https://user:pw@example.com:443/hook", {},
                              signed("https://user:pw@example.com/hook", token=TOKEN))


@pytest.mark.parametrize("signature", [b"c2lnbmF0dXJl", ["sig"], 7, "", None])
def test_a_signature_that_is_not_a_non_empty_string_is_refused(signature):
    assert is_valid_signature(TOKEN, "https://example.com/hook", {}, signature) is False


# --- protected functions ----------------------------------------------------------------------

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_protected_function_needs_a_valid_signature(runtime):
    """Over real HTTP: the URL signed is the one the request's Host names."""
    params = {"Digits": "1234", "From": "+14158675310"}
    body = urlencode(params).encode()
    url = runtime.url + "/webhook.protected"
    assert runtime.call("POST", "/webhook", body=body, headers=FORM).status == 403
    good = signed(runtime.url + "/webhook", params)
    answer = runtime.call("POST", "/webhook", body=body, headers={**FORM, "X-Twilio-Signature": good})
    assert answer.status == 200 and answer.json() == {"accepted": "1234"}
    tampered = urlencode({**params, "Digits": "9999"}).encode()
    assert runtime.call("POST", "/webhook", body=tampered,
                        headers={**FORM, "X-Twilio-Signature": good}).status == 403
    assert runtime.call("POST", "/webhook", body=body,
                        headers={**FORM, "X-Twilio-Signature": signed(url, params)}).status == 403


def test_protected_function_with_a_repeated_form_key(local):
    """Signed as twilio-python's RequestValidator signs a MultiDict: each distinct value once."""
    pairs = [("Digits", "7"), ("Media", "b"), ("Media", "a"), ("Media", "b")]
    good = hmac_sha1_b64(AUTH_TOKEN, local.url + "/webhook" + "Digits7" + "Mediaa" + "Mediab")
    answer = local.call("POST", "/webhook", body=urlencode(pairs).encode(),
                        headers={**FORM, "X-Twilio-Signature": good})
    assert answer.status == 200 and answer.json() == {"accepted": "7"}


def test_protected_function_with_json_body_uses_body_sha256(local):
    body = json.dumps({"Digits": "42"}).encode()
    target = f"/webhook?bodySHA256={hashlib.sha256(body).hexdigest()}"
    headers = {"Content-Type": "application/json", "X-Twilio-Signature": signed(local.url + target)}
    assert local.call("POST", target, body=body, headers=headers).json() == {"accepted": "42"}
    assert local.call("POST", target, body=body.replace(b"42", b"43"), headers=headers).status == 403


@pytest.mark.parametrize("name,kind", [
    ("content-type", "application/x-www-form-urlencoded; charset=utf-8; x=y"),
    ("CONTENT-TYPE", " Application/X-WWW-Form-URLEncoded ;charset=UTF-8"),
])
def test_a_signed_form_is_a_form_whatever_its_parameters_and_letter_case(local, name, kind):
    """The Content-Type header is found by any case; its type is what comes before the first
    ";", stripped and compared without regard to case."""
    params = {"Digits": "5"}
    headers = {name: kind, "X-Twilio-Signature": signed(local.url + "/webhook", params)}
    answer = local.call("POST", "/webhook", body=urlencode(params).encode(), headers=headers)
    assert answer.status == 200 and answer.json() == {"accepted": "5"}


def test_a_signed_request_without_a_content_type_is_checked_like_any_other(local):
    target = "/webhook?Digits=6"
    answer = local.call("GET", target, headers={"X-Twilio-Signature": signed(local.url + target)})
    assert answer.status == 200 and answer.json() == {"accepted": "6"}
    assert local.call("GET", target, headers={"X-Twilio-Signature": signed(local.url + "/webhook")}).status == 403


SIGNATURE_REFUSALS = {
    "missing": {"error": "invalid_signature",
                "message": "this function needs a valid X-Twilio-Signature header"},
    "uncovered": {"error": "invalid_signature",
                  "message": "a body that is not a form must be signed through a bodySHA256 query parameter"},
    "mismatch": {"error": "invalid_signature",
                 "message": "the X-Twilio-Signature does not match this request"},
}


def test_each_signature_refusal_says_why(local):
    """Each refusal's code and message; a JSON body under a signature without bodySHA256 is
    refused, not taken as covered."""
    body = urlencode({"Digits": "5"}).encode()
    missing = local.call("POST", "/webhook", body=body, headers=FORM)
    assert (missing.status, missing.json()) == (403, SIGNATURE_REFUSALS["missing"])
    wrong = local.call("POST", "/webhook", body=body, headers={**FORM, "X-Twilio-Signature": "x"})
    assert (wrong.status, wrong.json()) == (403, SIGNATURE_REFUSALS["mismatch"])
    signed_url = signed(local.url + "/webhook?Digits=5")
    uncovered = local.call("POST", "/webhook?Digits=5", body=json.dumps({"Digits": "9"}).encode(),
                           headers={"Content-Type": "application/json", "X-Twilio-Signature": signed_url})
    assert (uncovered.status, uncovered.json()) == (403, SIGNATURE_REFUSALS["uncovered"])


def test_a_request_without_host_is_signed_for_localhost(local):
    """The URL's host when the request names none."""
    target = "/webhook?Digits=8"
    request = Request("GET", target, [("X-Twilio-Signature", signed("http://localhost" + target))])
    answer = local.dispatch(request)
    assert answer.status == 200 and answer.body == b'{"accepted":"8"}'
