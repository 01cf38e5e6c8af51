"""bridge.cache: bounded caches forget the least recently used entry past their
size; expiring ones also forget an entry after its lifetime."""

from __future__ import annotations

import pytest
from cachetools import LRUCache, TTLCache

from bridge.cache import bounded, expiring


def test_bounded_forgets_the_least_recently_used_past_its_size() -> None:
    cache: LRUCache[int, str] = bounded(size=2)
    cache[1] = "a"
    cache[2] = "b"
    assert cache.get(1) == "a"  # 1 is now the most recently used
    cache[3] = "c"
    assert cache.get(2) is None
    assert (cache.get(1), cache.get(3)) == ("a", "c")
    assert len(cache) == 2


def test_expiring_forgets_an_entry_after_its_lifetime() -> None:
    now = [100.0]
    cache: TTLCache[str, str] = expiring(60, size=10, timer=lambda: now[0])
    cache["U1"] = "Alice"
    now[0] += 59
    assert cache.get("U1") == "Alice"
    now[0] += 2
    assert cache.get("U1") is None


@pytest.mark.parametrize("make", [lambda: bounded(size=0), lambda: expiring(60, size=0)])
def test_a_cache_needs_room(make) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="at least one entry"):
        make()


def test_an_expiring_cache_needs_a_lifetime() -> None:
    with pytest.raises(ValueError, match="lifetime"):
        expiring(0)
