"""The security review's attacks (issue 13), each tried over real sockets against the stand-ins.

Each test is one row of README's reliability report: the attack as an attacker with a Flex
login of their own (or a captured signed URL) would try it, and the refusal that must follow.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json

from conftest import AUTH_TOKEN


def _url_only_signature(url: str) -> str:
    # Twilio's documented algorithm, computed here independently of sfdcflex.runtime.signature.
    return base64.b64encode(hmac.new(AUTH_TOKEN.encode(), url.encode(), hashlib.sha1).digest()).decode()


# --- 1. X-Twilio-Signature and non-form bodies -----------------------------------------------

def test_a_signed_url_does_not_vouch_for_an_unsigned_body(runtime):
    target = "/webhook?Digits=1234"
    signature = _url_only_signature(runtime.url + target)
    plain = runtime.call("POST", target, headers={"X-Twilio-Signature": signature})
    assert plain.status == 200 and plain.json() == {"accepted": "1234"}
    forged = [(json.dumps({"Digits": "9999"}).encode(), "application/json"),
              (b"Digits=9999", "text/plain"), (b"Digits=9999", None),
              (b'{"Digits": "9999"}', None)]
    for body, kind in forged:
        headers = {"X-Twilio-Signature": signature, **({"Content-Type": kind} if kind else {})}
        answer = runtime.call("POST", target, body=body, headers=headers)
        assert answer.status == 403, (kind, body, answer.body)
        assert answer.json()["error"] == "invalid_signature"


def test_a_json_body_is_accepted_only_with_its_signed_matching_hash(runtime):
    body = json.dumps({"Digits": "42"}).encode()
    target = f"/webhook?Digits=1&bodySHA256={hashlib.sha256(body).hexdigest()}"
    headers = {"Content-Type": "application/json",
               "X-Twilio-Signature": _url_only_signature(runtime.url + target)}
    assert runtime.call("POST", target, body=body, headers=headers).json() == {"accepted": "42"}
    assert runtime.call("POST", target, body=body + b" ", headers=headers).status == 403
    unsigned_hash = f"/webhook?Digits=1&bodySHA256={hashlib.sha256(b'{}').hexdigest()}"
    assert runtime.call("POST", unsigned_hash, body=b"{}", headers=headers).status == 403
