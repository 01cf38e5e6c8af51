"""The bridge's one bounded-cache type: what a module remembers to save a database
read or an API call, with a size limit and, where the value can change, a lifetime.

Both are ``cachetools`` caches (maintained, typed, ``MutableMapping``), built here
so every module sizes them the same way and tests can give them a fake clock:

- :func:`bounded` for facts that never change once known (a ticket's thread, the
  ticket a thread root belongs to, an event id already handled): least recently
  used entries go first past ``size``;
- :func:`expiring` for facts that may change (a Slack display name): an entry is
  forgotten ``seconds`` after it was stored, as well as past ``size``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from cachetools import LRUCache, TTLCache

K = TypeVar("K")
V = TypeVar("V")

DEFAULT_SIZE = 10_000


def bounded(size: int = DEFAULT_SIZE) -> LRUCache[K, V]:
    """At most ``size`` entries; the least recently used go first."""
    if size < 1:
        raise ValueError("a cache needs room for at least one entry")
    return LRUCache(maxsize=size)


def expiring(
    seconds: float, *, size: int = DEFAULT_SIZE, timer: Callable[[], float] | None = None
) -> TTLCache[K, V]:
    """At most ``size`` entries, each forgotten ``seconds`` after it was stored;
    ``timer`` is a monotonic clock (``Clock.monotonic`` in the bridge)."""
    if size < 1:
        raise ValueError("a cache needs room for at least one entry")
    if seconds <= 0:
        raise ValueError("an expiring cache needs a lifetime above zero")
    if timer is None:
        return TTLCache(maxsize=size, ttl=seconds)
    return TTLCache(maxsize=size, ttl=seconds, timer=timer)
