"""``excerpt_of``: the raw event kept with a set-aside event is bounded ASCII JSON,
whatever the event, at a cost bounded by the limit."""

from __future__ import annotations

import json
import time

from hypothesis import given
from hypothesis import strategies as st

from bridge.core.quarantine import EXCERPT_LIMIT, excerpt_of

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=300),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=20), inner, max_size=6)
    ),
    max_leaves=30,
)


@given(JSON_VALUES)
def test_an_excerpt_is_bounded_ascii_and_whole_when_it_fits(value: object) -> None:
    excerpt = excerpt_of(value)
    assert excerpt.isascii() and "\x00" not in excerpt
    assert len(excerpt) <= EXCERPT_LIMIT
    whole = json.dumps(value, separators=(",", ":"))
    if len(whole) <= EXCERPT_LIMIT:
        assert excerpt == whole
    else:
        assert excerpt.endswith("...") and whole.startswith(excerpt[:-3])


@given(JSON_VALUES, st.integers(min_value=0, max_value=300))
def test_any_limit_holds(value: object, limit: int) -> None:
    assert len(excerpt_of(value, limit=limit)) <= limit


def test_the_cost_is_bounded_by_the_limit_not_the_event() -> None:
    deep: list[object] = []
    cursor = deep
    for _ in range(200_000):  # far deeper than recursion allows
        cursor.append([])
        cursor = cursor[0]  # type: ignore[assignment]
    wide = {str(n): "x" * 1000 for n in range(200_000)}
    long_text = "y" * 50_000_000
    started = time.perf_counter()
    for value in (deep, wide, long_text, [long_text] * 1000):
        assert len(excerpt_of(value)) == EXCERPT_LIMIT
    assert time.perf_counter() - started < 0.5
