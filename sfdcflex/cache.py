"""A thread-safe LRU cache with per-entry expiry, partitioned by owner (one agent each).

Built on the `collections.OrderedDict` recipe from the Python docs: a hit moves the key to the
end with `move_to_end`, and a full cache drops from the front with `popitem(last=False)`. Each
owner has an OrderedDict of its own, so one agent never reads another's entries and a busy
agent can only push out its own; the owners themselves sit in an OrderedDict too, so when the
global bound is reached the least recently active owner gives up its oldest entry. The server
calls this from many threads, hence one lock around every operation.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Hashable

MISSING = object()


@dataclass(frozen=True)
class CacheStats:
    """Counters since the cache was made: lookups answered, lookups missed, entries pushed out."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0


class LRUCache:
    """Least-recently-used entries with a time to live, at most `per_owner` per owner."""

    def __init__(self, per_owner: int = 100, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if per_owner < 1 or max_entries < 1:
            raise ValueError("per_owner and max_entries must be at least 1")
        self._per_owner = per_owner
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._owners: OrderedDict[str, OrderedDict[Hashable, tuple[float, object]]] = OrderedDict()
        self._size = 0
        self._hits = self._misses = self._evictions = 0

    @property
    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self._hits, self._misses, self._evictions)

    def __len__(self) -> int:
        with self._lock:
            return self._size

    def get(self, owner: str, key: Hashable) -> object:
        """The value stored for (owner, key), or MISSING when absent or expired."""
        with self._lock:
            entries = self._owners.get(owner)
            found = entries.get(key) if entries is not None else None
            if found is None:
                self._misses += 1
                return MISSING
            expires_at, value = found
            if expires_at <= self._clock():
                self._remove(owner, entries, key)
                self._misses += 1
                return MISSING
            entries.move_to_end(key)
            self._owners.move_to_end(owner)
            self._hits += 1
            return value

    def put(self, owner: str, key: Hashable, value: object, ttl: float) -> None:
        """Store a value for `ttl` seconds; a ttl of 0 or less stores nothing and forgets the key."""
        with self._lock:
            entries = self._owners.get(owner)
            if entries is not None and key in entries:
                self._remove(owner, entries, key)
                entries = self._owners.get(owner)
            if ttl <= 0:
                return
            if entries is None:
                entries = self._owners[owner] = OrderedDict()
            self._owners.move_to_end(owner)
            if len(entries) >= self._per_owner:
                entries.popitem(last=False)
                self._size -= 1
                self._evictions += 1
            while self._size >= self._max_entries:
                self._evict_oldest_owner_entry()
            # The global bound empties (and unlinks) this very owner when it is the only one.
            self._owners.setdefault(owner, entries)
            entries[key] = (self._clock() + ttl, value)
            self._size += 1

    def drop_owner(self, owner: str) -> int:
        """Forget every entry of one owner (an agent unlinked); returns how many went."""
        with self._lock:
            entries = self._owners.pop(owner, None)
            dropped = len(entries) if entries else 0
            self._size -= dropped
            return dropped

    def _remove(self, owner: str, entries: OrderedDict, key: Hashable) -> None:
        del entries[key]
        self._size -= 1
        if not entries:
            del self._owners[owner]

    def _evict_oldest_owner_entry(self) -> None:
        owner, entries = next(iter(self._owners.items()))
        entries.popitem(last=False)
        self._size -= 1
        self._evictions += 1
        if not entries:
            del self._owners[owner]
