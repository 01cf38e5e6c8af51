"""A small bounded map for facts that never change once known (a ticket's thread on
a frontend, the ticket a thread root belongs to): it saves a database read per
message and forgets the oldest entries past its size."""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class FixedFacts(Generic[K, V]):
    """Insertion-ordered, at most ``size`` entries; the oldest go first."""

    def __init__(self, size: int = 10_000) -> None:
        if size < 1:
            raise ValueError("a cache needs room for at least one entry")
        self._size = size
        self._entries: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        return self._entries.get(key)

    def remember(self, key: K, value: V) -> None:
        self._entries[key] = value
        if len(self._entries) > self._size:
            del self._entries[next(iter(self._entries))]

    def __len__(self) -> int:
        return len(self._entries)
