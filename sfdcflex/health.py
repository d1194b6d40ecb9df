"""GET /healthz for a load balancer or supervisor: is this instance able to serve?

No Token, no upstream call, no secret: it says which token store is in use and whether it can
be read. The runtime answers it as a built-in route, outside the concurrency cap, so a server
whose every slot is busy still answers its supervisor (see runtime/app.py, Builtin).
"""
from __future__ import annotations

import logging
import os
import threading

from . import __version__
from .runtime.app import Request
from .runtime.errors import ConfigError, HTTPError
from .runtime.response import Reply, encode_json
from .store import JsonFileTokenStore, TokenStore

log = logging.getLogger("sfdcflex")
PATH = "/healthz"


class HealthCheck:
    """The /healthz answer: 200 {"status": "ok", ...}, or 503 with the reason the store failed."""

    def __init__(self, store: TokenStore, store_kind: str) -> None:
        self.store = store
        self.store_kind = store_kind
        # The token file as last read (device, inode, size, mtime, ctime) and what reading it
        # said: a probe costs one stat while the file stays the same, whatever its size.
        self._last: tuple[tuple | None, str | None] = (None, None)
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Reply:
        body = {"status": "ok", "version": __version__, "store": self.store_kind}
        reason = self.store_problem()
        if reason is not None:
            body.update(status="unavailable", reason=reason)
        # Never cached: a proxy must not answer "ok" for a server that has since failed.
        headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
        return Reply(200 if reason is None else 503, headers, encode_json(body))

    def store_problem(self) -> str | None:
        """Why the token store cannot be read, or None.

        The Sync store is not probed: that would be an upstream call on every probe, and Sync
        being down is answered per request (502), not by taking every instance out of service.
        """
        if not isinstance(self.store, JsonFileTokenStore):
            return None
        try:
            info = os.stat(self.store.path, follow_symlinks=False)
        except FileNotFoundError:
            return None   # no agent has linked yet
        except OSError as error:
            return self._unreadable(error)
        seen = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        with self._lock:
            if self._last[0] == seen:
                return self._last[1]
        reason = self._read_problem()
        with self._lock:
            self._last = (seen, reason)
        return reason

    @staticmethod
    def _unreadable(error: OSError) -> str:
        log.warning("healthz: the token store cannot be read: %s", error.strerror)
        return f"the token store file cannot be read ({error.strerror})"

    def _read_problem(self) -> str | None:
        """Parse the whole token file, as a request would read it: why it cannot serve, or None."""
        try:
            self.store.check_readable()
        except OSError as error:
            return self._unreadable(error)
        except ConfigError as error:
            # A folder, a link or another user's file where the token file should be: the
            # path goes to the log only, as for every answer a client can see.
            log.warning("healthz: %s", error)
            return "the token store file cannot be read (it is not this user's regular file; see the server log)"
        except HTTPError as error:
            log.warning("healthz: %s", error.message)
            return "the token store file is damaged; see the server log"
        return None
