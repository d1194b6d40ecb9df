"""LRUCache behaviour that mutation testing found unchecked (mutmut 3.8, issue 18).

Each test names the surviving mutants it kills; the equivalent ones are listed in README's
reliability report.
"""
from __future__ import annotations

import pytest

from sfdcflex.cache import MISSING, LRUCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_defaults_are_100_per_owner_and_10000_in_all():
    """__init__ mutants 1 and 2 (other default sizes)."""
    cache = LRUCache()
    for n in range(101):
        cache.put("alice", n, n, 60)
    assert len(cache) == 100 and cache.get("alice", 0) is MISSING and cache.get("alice", 1) == 1
    wide = LRUCache(per_owner=20_000)
    for n in range(10_001):
        wide.put("alice", n, n, 60)
    assert len(wide) == 10_000 and wide.get("alice", 0) is MISSING


@pytest.mark.parametrize("per_owner,max_entries", [(0, 10), (10, 0), (0, 0), (-1, 10)])
def test_sizes_below_one_are_refused(per_owner, max_entries):
    """__init__ mutants 3-10 (`and` for `or`, bounds of 2, another message)."""
    with pytest.raises(ValueError, match="^per_owner and max_entries must be at least 1$"):
        LRUCache(per_owner=per_owner, max_entries=max_entries)


def test_sizes_of_one_are_allowed():
    cache = LRUCache(per_owner=1, max_entries=1)
    cache.put("alice", "k", "v", 60)
    assert cache.get("alice", "k") == "v"


def test_every_miss_is_counted_absent_or_expired():
    """get mutant 20 (`misses = 1` instead of `+= 1`)."""
    clock = Clock()
    cache = LRUCache(clock=clock)
    assert cache.get("alice", "a") is MISSING and cache.get("alice", "b") is MISSING
    cache.put("alice", "c", 1, 5)
    cache.put("alice", "d", 1, 5)
    clock.now += 5
    assert cache.get("alice", "c") is MISSING and cache.get("alice", "d") is MISSING
    assert cache.stats.misses == 4 and cache.stats.hits == 0


def test_storing_a_key_again_keeps_the_owners_other_keys_and_the_count():
    """put mutants 12 and 13 (the owner's entries not looked up before replacing a key)."""
    cache = LRUCache()
    cache.put("alice", "k1", 1, 60)
    cache.put("alice", "k2", 2, 60)
    cache.put("alice", "k1", 3, 60)
    assert cache.get("alice", "k1") == 3 and cache.get("alice", "k2") == 2
    assert len(cache) == 2


def test_a_ttl_of_zero_stores_nothing_and_a_short_one_stores():
    """put mutants 14 (`ttl < 0`) and 15 (`ttl <= 1`)."""
    clock = Clock()
    cache = LRUCache(clock=clock)
    cache.put("alice", "none", "x", 0)
    assert len(cache) == 0 and cache.get("alice", "none") is MISSING
    cache.put("alice", "brief", "y", 0.5)
    assert len(cache) == 1 and cache.get("alice", "brief") == "y"
    clock.now += 0.5
    assert cache.get("alice", "brief") is MISSING


def test_an_owner_emptied_by_the_global_bound_gets_its_new_entry():
    """put mutants 30 and 32 (the owner re-registered without its entries)."""
    cache = LRUCache(per_owner=10, max_entries=1)
    cache.put("alice", "k1", 1, 60)
    cache.put("alice", "k2", 2, 60)   # the global bound pushes out k1 and with it alice's dict
    assert cache.get("alice", "k2") == 2 and cache.get("alice", "k1") is MISSING
    assert len(cache) == 1
    cache.put("bob", "k3", 3, 60)
    assert cache.get("bob", "k3") == 3 and cache.get("alice", "k2") is MISSING


def test_an_expired_entry_leaves_the_owners_other_entries():
    """_remove mutant 4 (`if entries:` drops an owner that still has entries)."""
    clock = Clock()
    cache = LRUCache(clock=clock)
    cache.put("alice", "short", 1, 5)
    cache.put("alice", "long", 2, 60)
    clock.now += 5
    assert cache.get("alice", "short") is MISSING
    assert cache.get("alice", "long") == 2 and len(cache) == 1
    assert cache.drop_owner("alice") == 1
