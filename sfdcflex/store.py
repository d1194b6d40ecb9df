"""Where each agent's Salesforce tokens live: a JSON file (default) or Twilio Sync (sync_store.py).

Both stores give every write a revision, so a caller that read tokens, refreshed them and
writes back can say "only if nobody wrote since" (`if_revision`). Salesforce rotates refresh
tokens and revokes the whole chain when an old one is reused, so losing a write is not an
option: the file store locks across processes and threads and replaces the file atomically.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import mmap
import os
import secrets
import tempfile
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, ContextManager, Iterator, Protocol

from .private_files import open_private, read_private, secure_file, secure_folder
from .runtime.errors import ConfigError, HTTPError, InternalError
from .used_states import UsedStates

log = logging.getLogger("sfdcflex")
FILE_VERSION = 1
STAMP_BYTES = 16
# How often (seconds) the mapped stamp is checked to still be the lock file at its path: only an
# operator replacing that file changes it, and until then every write by anyone is seen at once.
STAMP_FILE_CHECK = 1.0


@dataclass(frozen=True)
class StoredTokens:
    """An agent's Salesforce tokens and the store's revision of them; repr never shows the tokens."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    revision: str | None = None


class RevisionConflict(HTTPError):
    """Someone else wrote this agent's tokens after the revision the caller read."""

    status, code = 409, "store_conflict"


class RefreshBusy(HTTPError):
    """Another instance held the agent's refresh lease for longer than we could wait."""

    status, code = 503, "refresh_in_progress"


class StoreDamaged(InternalError):
    """The token store cannot be read as tokens; it is left as it is for an operator to look at."""

    code = "token_store_damaged"


class TokenStore(Protocol):
    """Per-agent token storage with revisions."""

    def get(self, identity: str) -> StoredTokens | None: ...

    def put(self, identity: str, access_token: str, refresh_token: str, *,
            if_revision: str | None = None) -> StoredTokens: ...

    def delete(self, identity: str, *, if_revision: str | None = None) -> bool: ...

    def refresh_guard(self, identity: str) -> ContextManager[None]:
        """Held around one agent's refresh, so processes sharing the store refresh one at a time."""

    def check_identity(self, identity: str) -> None:
        """Raise IdentityNotStorable (403) when the store cannot hold this identity's link."""

    def claim_state(self, identity: str, nonce: str, expires_at: float) -> bool:
        """True the first time the agent's OAuth state nonce is claimed, False on every later try."""

    def is_current(self, identity: str, revision: str | None) -> bool:
        """True when the store can tell cheaply that the agent's link is still at `revision`;
        False means: read it again (another process or instance may have replaced or dropped it)."""


@dataclass(eq=False)
class _Change:
    """One save waiting for the next write of the JSON file, and what became of it."""

    identity: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    if_revision: str | None
    result: StoredTokens | None = None
    error: BaseException | None = None


class JsonFileTokenStore:
    """Tokens in one JSON file (mode 0600, folder 0700), locked with flock and replaced atomically."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._thread_lock = threading.Lock()
        self._pending: list[_Change] = []
        self._pending_lock = threading.Lock()
        self._confirmed: dict[str, tuple[bytes, str]] = {}   # identity -> (stamp, revision) last seen
        secure_folder(self.path.parent)
        secure_file(self.path)
        self._clock = clock
        self._stamp_file: tuple[mmap.mmap, int, int] | None = None   # (map, st_dev, st_ino)
        self._stamp_checked = clock()
        self._check_stamp_file()
        self._used_states = UsedStates(self.path.with_name(self.path.name + ".used-states"))
        if self._refresh_locks.exists():
            secure_folder(self._refresh_locks)

    @property
    def _refresh_locks(self) -> Path:
        return self.path.parent / f".{self.path.name}.refresh-locks"

    @staticmethod
    def check_identity(identity: str) -> None:
        """Every identity can be a key of the JSON file."""

    def claim_state(self, identity: str, nonce: str, expires_at: float) -> bool:
        """True the first time this agent's state nonce is claimed; False once it was.

        Kept beside the token file, not in it (used_states.py says why), until the state
        expires, so every process sharing the store refuses a second use, restarts too.
        """
        return self._used_states.claim(identity, nonce, expires_at)

    def get(self, identity: str) -> StoredTokens | None:
        """The agent's tokens, or None when they never linked (or unlinked)."""
        with self._locked(fcntl.LOCK_SH) as lock:
            stamp = os.pread(lock, STAMP_BYTES, 0)
            self._map_stamp(lock)
            entry = self._read()["agents"].get(identity)
        if entry is None:
            self._confirmed.pop(identity, None)
            return None
        self._confirmed[identity] = (stamp, entry["revision"])
        return StoredTokens(entry["access_token"], entry["refresh_token"], entry["revision"])

    def put(self, identity: str, access_token: str, refresh_token: str, *,
            if_revision: str | None = None) -> StoredTokens:
        """Save the agent's tokens; with if_revision, RevisionConflict unless it is still the stored one.

        Saves that arrive while another is being written are written together, in one atomic
        write (group commit): after a burst of refreshes, the last agent's new refresh token
        reaches the disk one write later, not one write per agent in front of it later.
        """
        change = _Change(identity, access_token, refresh_token, if_revision)
        with self._pending_lock:
            self._pending.append(change)
        with self._thread_lock:
            if change.result is None and change.error is None:
                with self._pending_lock:
                    batch, self._pending = self._pending, []
                self._commit(batch)
        if change.error is not None:
            raise change.error
        return change.result

    def _commit(self, batch: list[_Change]) -> None:
        """Apply every change that still matches its revision, then write the file once."""
        try:
            with self._locked(fcntl.LOCK_EX) as lock:
                document = self._read()
                stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
                for change in batch:
                    current = document["agents"].get(change.identity)
                    if change.if_revision is not None and (current is None or current["revision"] != change.if_revision):
                        change.error = RevisionConflict("The agent's Salesforce tokens changed meanwhile; read them again")
                        continue
                    revision = secrets.token_hex(8)
                    document["agents"][change.identity] = {
                        "access_token": change.access_token, "refresh_token": change.refresh_token,
                        "revision": revision, "updated_at": stamp}
                    change.result = StoredTokens(change.access_token, change.refresh_token, revision)
                if any(change.result is not None for change in batch):
                    self._write(document)
                    written = self._restamp(lock)
                    self._confirmed.update((change.identity, (written, change.result.revision))
                                           for change in batch if change.result is not None)
        except BaseException as error:  # nothing of this batch reached the disk
            for change in batch:
                change.result, change.error = None, change.error or error
            if not isinstance(error, Exception):
                raise

    def delete(self, identity: str, *, if_revision: str | None = None) -> bool:
        """Forget the agent's tokens; False when there were none; with if_revision, only that pair."""
        with self._thread_lock, self._locked(fcntl.LOCK_EX) as lock:
            document = self._read()
            current = document["agents"].get(identity)
            if current is None:
                return False
            if if_revision is not None and current["revision"] != if_revision:
                raise RevisionConflict("The agent's Salesforce tokens changed meanwhile; read them again")
            del document["agents"][identity]
            self._write(document)
            self._restamp(lock)
            self._confirmed.pop(identity, None)
        return True

    def is_current(self, identity: str, revision: str | None) -> bool:
        """Whether the agent's link is surely still at `revision`, told by the lock file's stamp.

        Every write stamps the lock file with new random bytes, so a process that last saw
        this agent's revision under the stamp still there knows nobody (no other process, no
        other instance on this file) changed the file since: no need to read it again.
        """
        confirmed = self._confirmed.get(identity)
        return confirmed is not None and confirmed == (self._stamp(), revision)

    def _stamp(self) -> bytes:
        """The lock file's stamp, read from a shared read-only mapping: no system call, and a
        write by any process (pwrite to the same file) is in the mapped page at once. Once a
        second the path is checked to still be that file (an operator may replace it)."""
        now = self._clock()
        if now - self._stamp_checked >= STAMP_FILE_CHECK:
            self._check_stamp_file()
        return self._stamp_file[0][:STAMP_BYTES]

    def _check_stamp_file(self) -> None:
        # No flock: a writer may hold it for an fsync, and mapping needs no lock. One lstat tells
        # the usual case (still the mapped file); anything else is opened as every private file is.
        self._stamp_checked = self._clock()
        if self._stamp_file is not None:
            try:
                info = os.stat(self._lock_path, follow_symlinks=False)
            except FileNotFoundError:
                info = None
            if info is not None and (info.st_dev, info.st_ino) == self._stamp_file[1:] \
                    and info.st_size >= STAMP_BYTES:
                return
        descriptor = open_private(self._lock_path, os.O_RDWR | os.O_CREAT)
        try:
            self._map_stamp(descriptor)
        finally:
            os.close(descriptor)

    def _map_stamp(self, lock: int) -> None:
        """Map the stamp of the lock file open as `lock`, unless that file is mapped already.

        The file is never truncated by this store (only pwrite at 0), so the mapped bytes stay
        readable; a file shorter than a stamp (emptied by hand) is stamped again first."""
        info = os.fstat(lock)
        if self._stamp_file is not None and self._stamp_file[1:] == (info.st_dev, info.st_ino) \
                and info.st_size >= STAMP_BYTES:
            return
        if info.st_size < STAMP_BYTES:
            os.pwrite(lock, secrets.token_bytes(STAMP_BYTES), 0)
        # The old map is not closed: another thread may be reading it; it goes with its last reference.
        self._stamp_file = (mmap.mmap(lock, STAMP_BYTES, access=mmap.ACCESS_READ), info.st_dev, info.st_ino)

    @staticmethod
    def _restamp(lock: int) -> bytes:
        """Mark a write (under the exclusive lock): readers holding the old stamp read again."""
        stamp = secrets.token_bytes(STAMP_BYTES)
        os.pwrite(lock, stamp, 0)
        return stamp

    @contextmanager
    def refresh_guard(self, identity: str) -> Iterator[None]:
        """An exclusive flock on the agent's own lock file: Salesforce rotates refresh tokens, so
        two processes (gunicorn workers, say) must never present the same one."""
        folder = self._refresh_locks
        if not folder.exists():
            secure_folder(folder)
        name = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:24]
        descriptor = open_private(folder / name, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    @contextmanager
    def _locked(self, mode: int) -> Iterator[int]:
        # A separate lock file, because os.replace swaps the data file's inode under any lock held on it.
        descriptor = open_private(self._lock_path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(descriptor, mode)
            yield descriptor
        finally:
            os.close(descriptor)

    def _read(self) -> dict:
        try:
            raw = read_private(self.path)
        except FileNotFoundError:
            return {"version": FILE_VERSION, "agents": {}}
        try:
            document = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise self._damaged("is not valid JSON") from None
        if not isinstance(document, dict) or document.get("version") != FILE_VERSION \
                or not isinstance(document.get("agents"), dict):
            raise self._damaged(f'does not hold {{"version": {FILE_VERSION}, "agents": {{...}}}}')
        for entry in document["agents"].values():
            if not isinstance(entry, dict) or not all(
                    isinstance(entry.get(key), str) for key in ("access_token", "refresh_token", "revision")):
                raise self._damaged("has an agent entry without access_token, refresh_token and revision")
        # Used states lived here before they got a file of their own: dropped at the next write.
        document.pop("used_states", None)
        return document

    def check_readable(self) -> None:
        """Read and parse the file; OSError or StoreDamaged when it cannot serve.

        No lock is taken: writers replace the file atomically, so a reader sees a whole one.
        """
        self._read()

    def _damaged(self, reason: str) -> StoreDamaged:
        # The operator learns the path from the log; a client is never told where files live.
        log.error("the token store %s %s; it was left untouched: repair it or move it away "
                  "(agents must then link again)", self.path, reason)
        return StoreDamaged("The token store is damaged; an operator must repair it")

    def _write(self, document: dict) -> None:
        folder = self.path.parent
        descriptor, temp_name = tempfile.mkstemp(dir=folder, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as temp:
                json.dump(document, temp, indent=1, sort_keys=True)
                temp.flush()
                os.fsync(temp.fileno())
            os.chmod(temp_name, 0o600)
            os.replace(temp_name, self.path)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(temp_name)
            raise
        # The rename is only durable once the folder entry itself reaches the disk.
        folder_descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(folder_descriptor)
        finally:
            os.close(folder_descriptor)


def store_file_problems(path: Path, *, with_file: bool = True) -> list[str]:
    """What would stop a JSON token store (or the state secret kept beside it) at `path`.

    Nothing is created: the folder must exist and be writable, or be creatable; with
    `with_file`, an existing token file must parse.
    """
    path = Path(path).absolute()
    folder = path.parent
    if not folder.exists():
        ancestor = next(parent for parent in folder.parents if parent.exists())
        if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
            return [f"config: TOKEN_STORE_PATH: the folder {folder} does not exist and cannot be "
                    f"created ({ancestor} is not a writable folder)"]
        return []
    if not folder.is_dir():
        return [f"config: TOKEN_STORE_PATH: {folder} is not a folder"]
    if not os.access(folder, os.W_OK | os.X_OK):
        return [f"config: TOKEN_STORE_PATH: the folder {folder} is not writable by this user"]
    if with_file and path.exists():
        try:
            JsonFileTokenStore(path).check_readable()
        except OSError as error:
            return [f"config: TOKEN_STORE_PATH: {path} cannot be read ({error.strerror})"]
        except StoreDamaged as error:
            return [f"config: TOKEN_STORE_PATH: {error.message}"]
        except ConfigError as error:   # not a regular file, a link, another user's
            return list(error.problems)
    return []
