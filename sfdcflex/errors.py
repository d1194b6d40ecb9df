"""The integration's own errors: the ones that speak of an agent's Salesforce link.

The generic HTTP errors (400, 403, 404, 502, ...) live in `sfdcflex.runtime.errors`; these
subclass them, so the runtime renders them like any other.
"""
from __future__ import annotations

from .runtime.errors import NotFound


class NotLinked(NotFound):
    """The agent has no (working) Salesforce link: they must connect again."""

    code = "not_linked"
