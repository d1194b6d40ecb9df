"""The per-agent LRU cache: expiry by an injected clock, per-owner and global bounds, isolation."""
from __future__ import annotations

import threading

import pytest

from sfdcflex.cache import MISSING, LRUCache
from tests.support.clocks import FakeClock


@pytest.fixture
def clock():
    return FakeClock()


def test_hit_then_expiry_without_sleeping(clock):
    cache = LRUCache(clock=clock)
    cache.put("alice", "+14155550101", {"cust_name": "Ann"}, ttl=300)
    clock.now += 299.9
    assert cache.get("alice", "+14155550101") == {"cust_name": "Ann"}
    clock.now += 0.1
    assert cache.get("alice", "+14155550101") is MISSING
    assert len(cache) == 0   # the expired entry was removed when met
    assert (cache.stats.hits, cache.stats.misses) == (1, 1)


def test_falsy_values_are_hits_and_ttl_zero_stores_nothing(clock):
    cache = LRUCache(clock=clock)
    cache.put("alice", "no-match", None, ttl=60)
    assert cache.get("alice", "no-match") is None
    cache.put("alice", "no-match", None, ttl=0)
    assert cache.get("alice", "no-match") is MISSING
    assert len(cache) == 0


def test_one_owner_never_sees_another_owners_entries(clock):
    cache = LRUCache(clock=clock)
    cache.put("alice", "+14155550101", "alice's record", ttl=60)
    assert cache.get("bob", "+14155550101") is MISSING
    cache.put("bob", "+14155550101", "bob's record", ttl=60)
    assert cache.get("alice", "+14155550101") == "alice's record"
    assert cache.get("bob", "+14155550101") == "bob's record"


def test_per_owner_bound_evicts_that_owners_least_recently_used(clock):
    cache = LRUCache(per_owner=3, clock=clock)
    cache.put("bob", "b", 0, ttl=60)
    for key in "123":
        cache.put("alice", key, key, ttl=60)
    cache.get("alice", "1")                 # "2" is now alice's least recently used
    cache.put("alice", "4", "4", ttl=60)
    assert cache.get("alice", "2") is MISSING
    assert [cache.get("alice", key) for key in "134"] == ["1", "3", "4"]
    assert cache.get("bob", "b") == 0       # a busy agent cannot push out another's entries
    assert cache.stats.evictions == 1


def test_global_bound_evicts_from_least_recently_active_owner(clock):
    cache = LRUCache(per_owner=10, max_entries=4, clock=clock)
    cache.put("alice", "a1", 1, ttl=60)
    cache.put("alice", "a2", 2, ttl=60)
    cache.put("bob", "b1", 3, ttl=60)
    cache.put("carol", "c1", 4, ttl=60)
    cache.get("alice", "a1")                # alice is active again; bob is now the oldest owner
    cache.put("dave", "d1", 5, ttl=60)
    assert len(cache) == 4
    assert cache.get("bob", "b1") is MISSING
    assert cache.get("alice", "a2") == 2


def test_single_owner_at_global_bound_keeps_working(clock):
    cache = LRUCache(per_owner=10, max_entries=2, clock=clock)
    for key in range(5):
        cache.put("alice", key, key, ttl=60)
    assert len(cache) == 2
    assert [cache.get("alice", key) for key in (3, 4)] == [3, 4]


def test_replacing_a_key_does_not_count_twice(clock):
    cache = LRUCache(per_owner=2, clock=clock)
    cache.put("alice", "k", 1, ttl=60)
    cache.put("alice", "k", 2, ttl=60)
    cache.put("alice", "j", 3, ttl=60)
    assert len(cache) == 2
    assert cache.get("alice", "k") == 2
    assert cache.stats.evictions == 0


def test_drop_owner_forgets_only_that_owner(clock):
    cache = LRUCache(clock=clock)
    for key in range(3):
        cache.put("alice", key, key, ttl=60)
    cache.put("bob", 0, "kept", ttl=60)
    assert cache.drop_owner("alice") == 3
    assert cache.drop_owner("alice") == 0
    assert cache.get("alice", 0) is MISSING
    assert cache.get("bob", 0) == "kept"
    assert len(cache) == 1


def test_concurrent_use_keeps_the_bounds(clock):
    cache = LRUCache(per_owner=20, max_entries=50, clock=clock)
    start = threading.Barrier(8)

    def work(owner: str) -> None:
        start.wait(timeout=5)
        for key in range(500):
            cache.put(owner, key, key, ttl=60)
            cache.get(owner, key - 3)

    threads = [threading.Thread(target=work, args=(f"agent{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)
    assert len(cache) <= 50
    stats = cache.stats
    assert stats.hits + stats.misses == 8 * 500
    assert stats.evictions == 8 * 500 - len(cache)


def test_the_defaults_are_100_per_owner_and_10000_in_all():
    """Guards against other default sizes."""
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
    """Either size below one is refused, in these words."""
    with pytest.raises(ValueError, match="^per_owner and max_entries must be at least 1$"):
        LRUCache(per_owner=per_owner, max_entries=max_entries)


def test_sizes_of_one_are_allowed():
    cache = LRUCache(per_owner=1, max_entries=1)
    cache.put("alice", "k", "v", 60)
    assert cache.get("alice", "k") == "v"


def test_every_miss_is_counted_absent_or_expired(clock):
    """Each miss adds one to the count, whether the key was absent or expired."""
    cache = LRUCache(clock=clock)
    assert cache.get("alice", "a") is MISSING and cache.get("alice", "b") is MISSING
    cache.put("alice", "c", 1, 5)
    cache.put("alice", "d", 1, 5)
    clock.now += 5
    assert cache.get("alice", "c") is MISSING and cache.get("alice", "d") is MISSING
    assert cache.stats.misses == 4 and cache.stats.hits == 0


def test_storing_a_key_again_keeps_the_owners_other_keys_and_the_count():
    """Replacing a key keeps the owner's other entries (they are looked up, not started afresh)."""
    cache = LRUCache()
    cache.put("alice", "k1", 1, 60)
    cache.put("alice", "k2", 2, 60)
    cache.put("alice", "k1", 3, 60)
    assert cache.get("alice", "k1") == 3 and cache.get("alice", "k2") == 2
    assert len(cache) == 2


def test_a_ttl_of_zero_stores_nothing_and_a_short_one_stores(clock):
    """A ttl of 0 stores nothing; any positive ttl, even under a second, stores."""
    cache = LRUCache(clock=clock)
    cache.put("alice", "none", "x", 0)
    assert len(cache) == 0 and cache.get("alice", "none") is MISSING
    cache.put("alice", "brief", "y", 0.5)
    assert len(cache) == 1 and cache.get("alice", "brief") == "y"
    clock.now += 0.5
    assert cache.get("alice", "brief") is MISSING


def test_an_owner_emptied_by_the_global_bound_gets_its_new_entry():
    """An owner whose entries the global bound pushed out is registered again with its new entry."""
    cache = LRUCache(per_owner=10, max_entries=1)
    cache.put("alice", "k1", 1, 60)
    cache.put("alice", "k2", 2, 60)   # the global bound pushes out k1 and with it alice's dict
    assert cache.get("alice", "k2") == 2 and cache.get("alice", "k1") is MISSING
    assert len(cache) == 1
    cache.put("bob", "k3", 3, 60)
    assert cache.get("bob", "k3") == 3 and cache.get("alice", "k2") is MISSING


def test_an_expired_entry_leaves_the_owners_other_entries(clock):
    """Removing an expired entry drops its owner only when the owner has no entries left."""
    cache = LRUCache(clock=clock)
    cache.put("alice", "short", 1, 5)
    cache.put("alice", "long", 2, 60)
    clock.now += 5
    assert cache.get("alice", "short") is MISSING
    assert cache.get("alice", "long") == 2 and len(cache) == 1
    assert cache.drop_owner("alice") == 1
