"""Where each agent's Salesforce tokens live: a JSON file (default) or Twilio Sync documents.

Both stores give every write a revision, so a caller that read tokens, refreshed them and
writes back can say "only if nobody wrote since" (`if_revision`). Salesforce rotates refresh
tokens and revokes the whole chain when an old one is reused, so losing a write is not an
option: the file store locks across processes and threads and replaces the file atomically.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import tempfile
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import ContextManager, Iterator, Protocol

from .runtime.errors import HTTPError, InternalError
from .clients.sync import DocumentExists, DocumentNotFound, RevisionMismatch, SyncClient

FILE_VERSION = 1


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

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._thread_lock = threading.Lock()
        self._pending: list[_Change] = []
        self._pending_lock = threading.Lock()
        folder = self.path.parent
        if not folder.exists():
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, 0o700)  # mkdir's mode is filtered by the umask

    def get(self, identity: str) -> StoredTokens | None:
        """The agent's tokens, or None when they never linked (or unlinked)."""
        with self._locked(fcntl.LOCK_SH):
            entry = self._read()["agents"].get(identity)
        if entry is None:
            return None
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
            with self._locked(fcntl.LOCK_EX):
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
        except BaseException as error:  # nothing of this batch reached the disk
            for change in batch:
                change.result, change.error = None, change.error or error
            if not isinstance(error, Exception):
                raise

    def delete(self, identity: str, *, if_revision: str | None = None) -> bool:
        """Forget the agent's tokens; False when there were none; with if_revision, only that pair."""
        with self._thread_lock, self._locked(fcntl.LOCK_EX):
            document = self._read()
            current = document["agents"].get(identity)
            if current is None:
                return False
            if if_revision is not None and current["revision"] != if_revision:
                raise RevisionConflict("The agent's Salesforce tokens changed meanwhile; read them again")
            del document["agents"][identity]
            self._write(document)
        return True

    @contextmanager
    def refresh_guard(self, identity: str) -> Iterator[None]:
        """An exclusive flock on the agent's own lock file: Salesforce rotates refresh tokens, so
        two processes (gunicorn workers, say) must never present the same one."""
        folder = self.path.parent / f".{self.path.name}.refresh-locks"
        folder.mkdir(mode=0o700, exist_ok=True)
        name = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:24]
        descriptor = os.open(folder / name, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    @contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        # A separate lock file, because os.replace swaps the data file's inode under any lock held on it.
        descriptor = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, mode)
            yield
        finally:
            os.close(descriptor)

    def _read(self) -> dict:
        try:
            raw = self.path.read_bytes()
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
        return document

    def _damaged(self, reason: str) -> StoreDamaged:
        return StoreDamaged(f"The token store {self.path} {reason}; it was left untouched: "
                            "repair it or move it away (agents must then link again)")

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


class SyncTokenStore:
    """Tokens in Twilio Sync documents named by identity, in the original plugin's exact data shape."""

    def __init__(self, client: SyncClient, *, lease_ttl: int = 30, lease_wait: float = 10.0) -> None:
        self._client = client
        self._lease_ttl = lease_ttl
        self._lease_wait = lease_wait

    def get(self, identity: str) -> StoredTokens | None:
        """The agent's tokens from their document, or None when there is none."""
        document = self._client.fetch_document(identity)
        if document is None:
            return None
        return _tokens_from(document, identity)

    def put(self, identity: str, access_token: str, refresh_token: str, *,
            if_revision: str | None = None) -> StoredTokens:
        """Create or update the agent's document; with if_revision, Sync checks it (If-Match)."""
        data = {"access_token": access_token, "refresh_token": refresh_token}
        if if_revision is not None:
            try:
                document = self._client.update_document(identity, data, if_match=if_revision)
            except (RevisionMismatch, DocumentNotFound):
                raise RevisionConflict("The agent's Salesforce tokens changed meanwhile; "
                                       "read them again") from None
            return _tokens_from(document, identity)
        try:
            document = self._client.create_document(identity, data)
        except DocumentExists:
            # 409 / 54301: the agent linked before (perhaps through the original plugin): overwrite.
            document = self._client.update_document(identity, data)
        return _tokens_from(document, identity)

    @contextmanager
    def refresh_guard(self, identity: str) -> Iterator[None]:
        """A lease document, so instances sharing Sync refresh an agent one at a time.

        Salesforce rotates refresh tokens, so two instances must never present the same one.
        Creating a document with a unique name is atomic in Sync (a second create gets 409), and
        its Ttl makes Sync delete it should the holder die; the token document's shape stays the
        original plugin's.
        """
        lease = f"{identity}.refresh-lease"
        deadline = time.monotonic() + self._lease_wait
        while True:
            try:
                self._client.create_document(lease, {"holder": secrets.token_hex(8)}, ttl=self._lease_ttl)
                break
            except DocumentExists:
                if time.monotonic() > deadline:
                    # The holder needs one Salesforce round-trip; a second is plenty to wait.
                    raise RefreshBusy("Another instance is refreshing this agent's Salesforce session; "
                                      "try again in a moment", headers={"Retry-After": "1"}) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            with suppress(HTTPError):
                self._client.delete_document(lease)

    def delete(self, identity: str, *, if_revision: str | None = None) -> bool:
        """Delete the agent's document; False when there was none; with if_revision, only that one."""
        try:
            return self._client.delete_document(identity, if_match=if_revision)
        except RevisionMismatch:
            raise RevisionConflict("The agent's Salesforce tokens changed meanwhile; read them again") from None


def _tokens_from(document: dict, identity: str) -> StoredTokens:
    data = document.get("data", {})
    access_token, refresh_token = data.get("access_token"), data.get("refresh_token")
    if not isinstance(access_token, str) or not isinstance(refresh_token, str):
        raise StoreDamaged(f"The Sync document {identity!r} does not hold access_token and refresh_token")
    revision = document.get("revision")
    return StoredTokens(access_token, refresh_token, None if revision is None else str(revision))
