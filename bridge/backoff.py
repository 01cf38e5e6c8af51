"""The reconnect schedule: attempt number → delay before that attempt.

The ceiling grows exponentially from ``initial`` by ``factor`` per attempt and is
capped at ``maximum``; the delay is drawn below the ceiling with jitter from an
injected :class:`random.Random`, so sessions that lost the network together do not
all come back at the same instant. ``jitter=1`` is "full jitter" (anywhere in
``(0, ceiling]``), ``jitter=0`` the bare exponential. Pure: no clock, no state.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter; attempts are numbered from 1."""

    initial: float
    maximum: float
    factor: float = 2.0
    jitter: float = 1.0

    def __post_init__(self) -> None:
        if self.initial <= 0:
            raise ValueError(f"initial delay must be positive; got {self.initial}")
        if self.maximum < self.initial:
            raise ValueError(f"maximum {self.maximum} is below initial {self.initial}")
        if self.factor < 1:
            raise ValueError(f"factor must be at least 1; got {self.factor}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1; got {self.jitter}")

    def ceiling(self, attempt: int) -> float:
        """The longest delay before ``attempt``: ``initial·factor^(attempt-1)``, capped."""
        if attempt < 1:
            raise ValueError(f"attempts are numbered from 1; got {attempt}")
        steps = attempt - 1
        if self.factor > 1 and steps >= math.log(self.maximum / self.initial, self.factor):
            return self.maximum  # also keeps factor**steps from overflowing
        return min(self.maximum, self.initial * self.factor**steps)

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The delay before ``attempt``, in ``(ceiling·(1-jitter), ceiling]``."""
        top = self.ceiling(attempt)
        return top * (1.0 - self.jitter * rng.random())
