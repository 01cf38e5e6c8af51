"""The reconnect schedule: values, cap, jitter bounds."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.backoff import Backoff


def test_ceiling_doubles_from_initial_and_stops_at_the_cap() -> None:
    backoff = Backoff(initial=2, maximum=300)
    assert [backoff.ceiling(n) for n in range(1, 11)] == [
        2,
        4,
        8,
        16,
        32,
        64,
        128,
        256,
        300,
        300,
    ]


def test_ceiling_of_huge_attempt_numbers_is_the_cap_without_overflow() -> None:
    assert Backoff(initial=2, maximum=300).ceiling(100_000) == 300


def test_factor_one_is_a_constant_schedule() -> None:
    backoff = Backoff(initial=5, maximum=60, factor=1)
    assert {backoff.ceiling(n) for n in (1, 2, 50, 10_000)} == {5}


def test_without_jitter_the_delay_is_the_ceiling() -> None:
    backoff = Backoff(initial=1, maximum=30, jitter=0)
    rng = random.Random(1)
    assert [backoff.delay(n, rng) for n in range(1, 7)] == [1, 2, 4, 8, 16, 30]


def test_full_jitter_stays_in_bounds_and_spreads() -> None:
    backoff = Backoff(initial=2, maximum=300)
    rng = random.Random(42)
    delays = [backoff.delay(4, rng) for _ in range(2000)]
    assert all(0 < d <= 16 for d in delays)
    assert min(delays) < 1 and max(delays) > 15  # uses the whole range
    assert statistics.mean(delays) == pytest.approx(8, rel=0.1)


def test_partial_jitter_keeps_the_lower_part_of_the_ceiling() -> None:
    backoff = Backoff(initial=2, maximum=300, jitter=0.5)
    rng = random.Random(3)
    assert all(8 <= backoff.delay(4, rng) <= 16 for _ in range(500))


def test_same_seed_same_schedule() -> None:
    backoff = Backoff(initial=2, maximum=60)
    first = [backoff.delay(n, random.Random(9)) for n in range(1, 8)]
    second = [backoff.delay(n, random.Random(9)) for n in range(1, 8)]
    assert first == second


@given(
    initial=st.floats(min_value=0.01, max_value=100),
    spread=st.floats(min_value=1, max_value=1000),
    attempt=st.integers(min_value=1, max_value=100_000),
    jitter=st.floats(min_value=0, max_value=1),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_delay_is_within_jitter_bounds_of_the_ceiling(
    initial: float, spread: float, attempt: int, jitter: float, seed: int
) -> None:
    backoff = Backoff(initial=initial, maximum=initial * spread, jitter=jitter)
    top = backoff.ceiling(attempt)
    assert initial <= top <= backoff.maximum
    delay = backoff.delay(attempt, random.Random(seed))
    assert top * (1 - jitter) - 1e-9 <= delay <= top
    assert delay > 0


@given(attempt=st.integers(min_value=1, max_value=200))
def test_ceiling_never_shrinks(attempt: int) -> None:
    backoff = Backoff(initial=0.5, maximum=120, factor=1.7)
    assert backoff.ceiling(attempt) <= backoff.ceiling(attempt + 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial": 0, "maximum": 10}, "initial delay must be positive"),
        ({"initial": 5, "maximum": 1}, "below initial"),
        ({"initial": 1, "maximum": 10, "factor": 0.5}, "factor must be at least 1"),
        ({"initial": 1, "maximum": 10, "jitter": 1.5}, "jitter must be between 0 and 1"),
    ],
)
def test_invalid_schedules_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Backoff(**kwargs)


def test_attempts_are_numbered_from_one() -> None:
    with pytest.raises(ValueError, match="numbered from 1"):
        Backoff(initial=1, maximum=2).ceiling(0)
