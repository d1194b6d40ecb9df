"""Email addresses, for chat and email tasks: checked and lower-cased before they reach SOSL/SOQL.

Salesforce matches email fields case-insensitively; lower-casing here makes one cache entry per
address. The check is the common subset of RFC 5322 that real mailboxes use: a dot-atom local part
and a domain of LDH labels (RFC 1035), within the 254/64-character limits of RFC 5321 (errata 1690).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .runtime.errors import BadRequest

MAX_ADDRESS_CHARS = 254
_ADDRESS = re.compile(r"(?P<local>[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
                      r"@(?P<domain>(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63})")


@dataclass(frozen=True)
class EmailAddress:
    """A checked, lower-cased address."""

    address: str

    @property
    def cache_key(self) -> str:
        return "email:" + self.address


def parse_email(value: object) -> EmailAddress:
    """The address in `value`, lower-cased; anything that is not one plain address is a 400."""
    if not isinstance(value, str):
        raise BadRequest("email must be text such as jane@example.com", code="invalid_email")
    address = value.strip().lower()
    match = _ADDRESS.fullmatch(address) if len(address) <= MAX_ADDRESS_CHARS else None
    if match is None or len(match["local"]) > 64:
        raise BadRequest("email is not a valid address (expected something like jane@example.com)",
                         code="invalid_email")
    return EmailAddress(address)
