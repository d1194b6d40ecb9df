"""OAuth `state` that is signed rather than stored, and the PKCE verifier derived from it.

Nothing is kept in memory between /auth and /oauth-callback, so any of several server instances
holding the same secret can finish a link that another one started.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .private_files import read_private, secure_folder
from .runtime.errors import BadRequest, ConfigError, Forbidden

# A state travels in the authorize URL and back in the redirect; ours is about 150 characters.
# Anything far longer is not ours, so refuse it before decoding.
MAX_STATE_LENGTH = 2048
SECRET_BYTES = 32
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


@dataclass(frozen=True)
class LinkState:
    """What a verified state says: which Flex agent started the link, and until when."""

    identity: str
    nonce: str
    expires_at: float
    origin: str | None


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Strict unpadded base64url: any other character is an error, never silently dropped,
    so one state has exactly one spelling."""
    if not _BASE64URL.fullmatch(text):
        raise binascii.Error("not base64url")
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _bad_state(message: str) -> BadRequest:
    return BadRequest(message, code="invalid_state")


class StateSigner:
    """Signs and verifies OAuth state with HMAC-SHA256; stateless, so instances can share it."""

    def __init__(self, secret: bytes, ttl: float = 600,
                 clock: Callable[[], float] = time.time) -> None:
        if not isinstance(secret, bytes) or len(secret) < 16:
            raise ValueError("the state secret must be at least 16 bytes")
        self._secret = secret
        self._ttl = ttl
        self._clock = clock

    def _mac(self, message: bytes) -> bytes:
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def sign(self, identity: str, origin: str | None = None) -> str:
        """A URL-safe state naming `identity`, valid for the signer's ttl."""
        if not isinstance(identity, str) or not identity:
            raise ValueError("identity must be a non-empty string")
        claims = {"i": identity, "n": secrets.token_urlsafe(16),
                  "e": int(self._clock() + self._ttl)}
        if origin is not None:
            claims["o"] = origin
        payload = json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return f"{_b64encode(payload)}.{_b64encode(self._mac(payload))}"

    def verify(self, state: object) -> LinkState:
        """The claims of a state this secret signed; 400 if malformed, 403 if forged or expired."""
        if not isinstance(state, str) or not state:
            raise _bad_state("the OAuth state is missing")
        if len(state) > MAX_STATE_LENGTH:
            raise _bad_state("the OAuth state is too long")
        encoded_payload, dot, encoded_mac = state.partition(".")
        try:
            payload = _b64decode(encoded_payload)
            mac = _b64decode(encoded_mac)
        except (binascii.Error, ValueError):
            raise _bad_state("the OAuth state is malformed") from None
        if not dot or not payload:
            raise _bad_state("the OAuth state is malformed")
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise Forbidden("the OAuth state was not issued by this server", code="invalid_state")
        link = self._claims(payload)
        if link.expires_at <= self._clock():
            raise Forbidden("the sign-in link expired; start linking again", code="expired_state")
        return link

    @staticmethod
    def _claims(payload: bytes) -> LinkState:
        try:
            claims = json.loads(payload)
            link = LinkState(claims["i"], claims["n"], float(claims["e"]), claims.get("o"))
        except (ValueError, KeyError, TypeError):
            raise _bad_state("the OAuth state is malformed") from None
        if not (isinstance(link.identity, str) and isinstance(link.nonce, str)
                and isinstance(link.origin, (str, type(None)))):
            raise _bad_state("the OAuth state is malformed")
        return link

    def code_verifier(self, state: LinkState) -> str:
        """The PKCE code_verifier for this link attempt (RFC 7636), recomputable from the secret.

        PKCE binds the authorization code to whoever knows the verifier. Deriving it as
        HMAC(secret, "pkce:" + nonce) means the verifier is never stored and never travels in
        the state or any URL: a redirect intercepted on its way back (code and state) cannot be
        exchanged without the secret, yet any instance holding the secret can finish the link.
        """
        raw = self._mac(b"pkce:" + state.nonce.encode("utf-8"))
        return _b64encode(raw)   # 43 characters of [A-Za-z0-9-_], as RFC 7636 section 4.1 allows


def code_challenge(verifier: str) -> str:
    """The S256 code_challenge for a verifier: base64url(SHA-256(verifier)) without padding."""
    return _b64encode(hashlib.sha256(verifier.encode("ascii")).digest())


def load_or_create_secret(path: Path) -> bytes:
    """The state secret kept in `path` (hex), created with 32 random bytes, mode 0600, if absent."""
    path = Path(path)
    secure_folder(path.parent)
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    # Write a private temp file, then hard-link it into place: link() fails if the name exists,
    # so two processes starting at once both end up reading the one secret that won, and no
    # reader ever sees a half-written file.
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(SECRET_BYTES) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            pass
    finally:
        temp.unlink(missing_ok=True)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    text = read_private(path).decode("ascii", errors="replace").strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) < SECRET_BYTES:
        raise ConfigError(f"config: the state secret file {path} is damaged; "
                          "delete it to have a new one made")
    return secret
