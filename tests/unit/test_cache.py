"""The bounded map of facts that never change."""

from __future__ import annotations

import pytest

from bridge.core.cache import FixedFacts


def test_remembers_and_forgets_the_oldest_past_its_size() -> None:
    facts: FixedFacts[int, str] = FixedFacts(size=2)
    facts.remember(1, "a")
    facts.remember(2, "b")
    assert (facts.get(1), facts.get(2), facts.get(3)) == ("a", "b", None)
    facts.remember(3, "c")
    assert (facts.get(1), facts.get(2), facts.get(3), len(facts)) == (None, "b", "c", 2)


def test_needs_room() -> None:
    with pytest.raises(ValueError, match="at least one"):
        FixedFacts(size=0)
