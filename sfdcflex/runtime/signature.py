"""Twilio's X-Twilio-Signature: compute it and check it, as Twilio's webhook security docs define.

The signature is base64(HMAC-SHA1(auth token, full URL + each POST parameter's name and value,
names in sorted order)). For a JSON body Twilio instead adds a `bodySHA256` query parameter
holding the hex SHA-256 of the raw body and signs the URL alone.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Mapping, Union
from urllib.parse import parse_qs, urlsplit, urlunsplit

Params = Mapping[str, Union[str, list[str]]]
_DEFAULT_PORTS = {"https": 443, "http": 80}


def compute_signature(auth_token: str, url: str, params: Params | None = None) -> str:
    """The X-Twilio-Signature Twilio sends for a request to `url` with these form parameters."""
    message = [url]
    for name in sorted(params or {}):
        values = params[name]
        # A repeated form key contributes each distinct value once, in sorted order, as
        # twilio-python's RequestValidator does (sorted(set(values)) over a MultiDict).
        for value in sorted(set(values)) if isinstance(values, (list, tuple)) else (values,):
            message.append(name + value)
    digest = hmac.new(auth_token.encode("utf-8"), "".join(message).encode("utf-8"), hashlib.sha1)
    return base64.b64encode(digest.digest()).decode("ascii")


def _port_variants(url: str) -> list[str]:
    """The URL as given and with its default port toggled (":443" added or removed).

    Twilio's own validators accept both, because proxies and frameworks disagree about
    whether the reconstructed URL carries the scheme's default port.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return [url]
    default = _DEFAULT_PORTS.get(parts.scheme)
    if default is None or parts.hostname is None:
        return [url]
    if port is None:
        netloc = f"{parts.netloc}:{default}"
    elif port == default:
        netloc = parts.netloc[:parts.netloc.rindex(":")]
    else:
        return [url]
    return [url, urlunsplit(parts._replace(netloc=netloc))]


def _body_hash_matches(url: str, body: bytes | None) -> bool | None:
    """None when the URL has no bodySHA256; else whether it is the SHA-256 of `body`."""
    claimed = parse_qs(urlsplit(url).query).get("bodySHA256")
    if not claimed:
        return None
    actual = hashlib.sha256(body or b"").hexdigest()
    claimed_hex = claimed[0].lower().encode("ascii", "replace")
    return hmac.compare_digest(claimed_hex, actual.encode("ascii"))


def is_valid_signature(auth_token: str, url: str, params: Params | None,
                       signature: str | None, body: bytes | None = None) -> bool:
    """Whether `signature` is what Twilio would send for this URL and form parameters or body."""
    if not signature or not isinstance(signature, str):
        return False
    body_ok = _body_hash_matches(url, body)
    if body_ok is not None:
        params = None   # a JSON body is covered by its hash in the URL, not by parameters
    expected = signature.encode("ascii", "replace")
    valid = False
    for candidate in _port_variants(url):
        computed = compute_signature(auth_token, candidate, params).encode("ascii")
        valid |= hmac.compare_digest(computed, expected)
    return valid and body_ok is not False


def body_is_covered(url: str, body: bytes | None, is_form: bool) -> bool:
    """Whether a signature over `url` can vouch for this body, as Twilio signs requests.

    Twilio covers a form body by signing its parameters, and any other body only through a
    `bodySHA256` query parameter (the hex SHA-256 of the raw body) inside the signed URL.
    A JSON, text or untyped body without a matching one is covered by nothing, and since the
    body's values override the query's in `event`, accepting it would let anyone who saw one
    signed URL send any parameters they like.
    """
    return not body or is_form or _body_hash_matches(url, body) is True
