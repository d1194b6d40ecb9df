"""The audit trail of links: one log line, and a count, per link, re-link, unlink and link dropped.

Each line says who (the Flex identity), which Salesforce user, when (UTC, to the second) and
from which instance (host name and process id: several instances and gunicorn's workers log to
one place). With LOG_FORMAT=json the same facts are keys of the line's object.

A link records the username Salesforce's userinfo gave. The token store keeps only the
original's `{access_token, refresh_token}`, so an unlink or a drop on an instance that did not
make the link names the Salesforce user as the username that link had to have: the Flex
identity, as linking.same_identity compares them.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from .runtime.app import loggable
from .runtime.metrics import Registry

log = logging.getLogger("sfdcflex")
EVENTS = ("link", "relink", "unlink", "dropped")
# Memory of who linked which Salesforce user, for the unlink's line: bounded like every cache here.
MAX_REMEMBERED = 10_000
# Told of each audited event (the demo's link trace listens); never on a lookup's path.
AuditListener = Callable[[str, str, str], None]


def this_instance() -> str:
    """Host name and process id: what tells apart instances and workers writing to one log."""
    return f"{socket.gethostname()}/{os.getpid()}"


class LinkAudit:
    """Writes the audit lines and counts links, unlinks, drops and token refreshes."""

    def __init__(self, registry: Registry | None = None, *, instance: str | None = None,
                 clock: Callable[[], float] = time.time, listener: AuditListener | None = None) -> None:
        registry = registry or Registry()   # counted, though nobody may read it (a test's keeper)
        events = registry.counter("sfdcflex_link_events_total", "Audited link events: link, relink "
                                  "(replacing an earlier link), unlink, dropped (Salesforce answered "
                                  "invalid_grant to a refresh).", ("event",))
        self._events = {event: events.labels(event) for event in EVENTS}
        refreshes = registry.counter("sfdcflex_token_refreshes_total", "Salesforce access token "
                                     "refreshes, by outcome (ok, failed).", ("outcome",))
        self._refreshed, self._refresh_failed = refreshes.labels("ok"), refreshes.labels("failed")
        self.instance = instance or this_instance()
        self._clock = clock
        self._listener = listener
        self._usernames: dict[str, str] = {}
        self._lock = threading.Lock()

    def record(self, event: str, identity: str, sfdc_user: str | None = None) -> None:
        """One audit line for `event` (one of EVENTS) of the agent `identity`, and its count."""
        with self._lock:
            if sfdc_user:
                self._remember(identity, sfdc_user)
            else:
                sfdc_user = self._usernames.get(identity, identity)
            if event in ("unlink", "dropped"):
                self._usernames.pop(identity, None)
        self._events[event].inc()
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._clock()))
        fields = {"audit": event, "flex_user": identity, "sfdc_user": sfdc_user,
                  "instance": self.instance, "at": at}
        log.info("audit %s flex_user=%s sfdc_user=%s instance=%s at=%s", event, loggable(identity),
                 loggable(sfdc_user), loggable(self.instance), at, extra={"fields": fields})
        if self._listener is not None:
            self._listener(event, identity, sfdc_user)

    @contextmanager
    def refreshing(self) -> Iterator[None]:
        """Count one refresh: ok when the block ends normally, failed when it raises."""
        try:
            yield
        except BaseException:
            self._refresh_failed.inc()
            raise
        self._refreshed.inc()

    def _remember(self, identity: str, sfdc_user: str) -> None:
        self._usernames.pop(identity, None)
        self._usernames[identity] = sfdc_user
        if len(self._usernames) > MAX_REMEMBERED:
            self._usernames.pop(next(iter(self._usernames)))
