"""Used OAuth states of the JSON token store, in a small file of their own beside the token file.

A state is good for one callback, so its nonce is remembered until the state expires, where
every process sharing the store sees it. Not in the token file: a claim would rewrite and fsync
every agent's tokens and change the stamp that tells each process its cached links still hold,
so every process would read the whole token file again. And a few per agent, oldest dropped: a
claim comes before the code is exchanged, so anyone with a Flex login can make claims as fast as
they can send requests; with one shared cap for everybody, one agent could keep every other
agent's sign-in refused. The few that remain stop a replayed redirect of any recent sign-in.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable

from .private_files import open_private, secure_file
from .runtime.errors import TooManyRequests

log = logging.getLogger("sfdcflex")
# An agent starting more sign-ins than this within one state lifetime (10 minutes) loses the
# replay guard of their oldest: far above a real agent's retries, far below a lock-out.
MAX_STATES_PER_AGENT = 5
# Every agent's sign-ins under way at once: a bound on the file, reached only by thousands of agents.
MAX_USED_STATES = 10_000
FILE_VERSION = 1


class UsedStates:
    """The used states' nonces per Flex identity, until each state expires, in one locked file."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._thread_lock = threading.Lock()   # flock is per open file, not per thread
        secure_file(self.path)

    def claim(self, identity: str, nonce: str, expires_at: float) -> bool:
        """True the first time this agent's state nonce is claimed; False once it was."""
        with self._thread_lock:
            descriptor = open_private(self.path, os.O_RDWR | os.O_CREAT)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX)
                now = self._clock()
                live = {who: kept for who, held in self._read(descriptor).items()
                        if (kept := {n: until for n, until in held.items() if until > now})}
                mine = live.setdefault(identity, {})
                if nonce in mine:
                    return False
                if len(mine) < MAX_STATES_PER_AGENT and \
                        sum(len(held) for held in live.values()) >= MAX_USED_STATES:
                    raise TooManyRequests("Too many Salesforce sign-ins at once; try again in a few "
                                          "minutes", headers={"Retry-After": "60"})
                while len(mine) >= MAX_STATES_PER_AGENT:
                    del mine[min(mine, key=mine.__getitem__)]
                mine[nonce] = expires_at
                _write(descriptor, {"version": FILE_VERSION, "states": live})
            finally:
                os.close(descriptor)
        return True

    def _read(self, descriptor: int) -> dict[str, dict[str, float]]:
        raw = os.pread(descriptor, os.fstat(descriptor).st_size, 0)
        if not raw:
            return {}
        try:
            document = json.loads(raw.decode("utf-8"))
            states = document["states"]
            if document["version"] == FILE_VERSION and all(
                    isinstance(held, dict) and all(isinstance(t, (int, float)) for t in held.values())
                    for held in states.values()):
                return states
        except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
            pass
        # Unlike the tokens, nothing here is worth keeping: starting afresh costs at most the
        # replay guard of states signed in the last 10 minutes, which still need our signature.
        log.error("the used OAuth states file %s is damaged; it is started afresh", self.path)
        return {}


def _write(descriptor: int, document: dict) -> None:
    # In place under the lock: the file is small, and a write torn by a crash reads as damaged,
    # which starts it afresh (see _read).
    encoded = json.dumps(document, separators=(",", ":")).encode("utf-8")
    os.pwrite(descriptor, encoded, 0)
    os.ftruncate(descriptor, len(encoded))
    os.fsync(descriptor)
