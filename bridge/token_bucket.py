"""The bridge's one token bucket, for every outbound pace: a WhatsApp number's sends
(:mod:`bridge.whatsapp.pacing`) and a Slack channel's Web API writes
(:mod:`bridge.slack.ratelimit`).

The bucket holds up to ``burst`` tokens and earns ``per_second`` tokens a second; a
call takes one token, waiting for it when the bucket is empty. It is kept as a
"theoretical arrival time" (the GCRA form of a token bucket): exact on a fake clock,
no refill loop. It does not queue: whoever waits for a token keeps the order of its
callers (a lock, or one caller at a time).
"""

from __future__ import annotations

from bridge.clock import Clock

# A token this close to its due time counts as due: clocks add up floats.
TOLERANCE = 1e-6


class TokenBucket:
    """``per_second`` tokens a second, up to ``burst`` at once, on ``clock``'s
    monotonic time; full when created."""

    def __init__(self, *, per_second: float, burst: int, clock: Clock) -> None:
        if per_second <= 0:
            raise ValueError(f"the rate must be positive; got {per_second}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1; got {burst}")
        self._interval = 1.0 / per_second
        self._burst = burst
        self._clock = clock
        self._tat: float | None = None  # theoretical arrival time of the next token
        self._held_until: float | None = None

    @classmethod
    def per_minute(cls, per_minute: float, *, burst: int, clock: Clock) -> TokenBucket:
        """``per_minute`` tokens a minute, up to ``burst`` at once."""
        if per_minute <= 0:
            raise ValueError(f"per_minute must be positive; got {per_minute}")
        return cls(per_second=per_minute / 60.0, burst=burst, clock=clock)

    @property
    def interval(self) -> float:
        """Seconds per token once the burst is spent."""
        return self._interval

    def ready_at(self) -> float:
        """The monotonic time at which the next token is available."""
        now = self._clock.monotonic()
        if self._tat is None:
            return now
        return max(now, self._tat - (self._burst - 1) * self._interval)

    def seconds_until_token(self) -> float:
        """How long until a token is there: 0 when one is."""
        wait = self.ready_at() - self._clock.monotonic()
        return wait if wait > TOLERANCE else 0.0

    async def wait_for_token(self) -> None:
        """Sleep on the clock until a token is there (without taking it)."""
        while (wait := self.seconds_until_token()) > 0:
            await self._clock.sleep(wait)

    def take(self) -> None:
        """Spend one token (the caller waited for it)."""
        now = self._clock.monotonic()
        self._tat = max(self._tat if self._tat is not None else now, now) + self._interval

    def hold_until(self, when: float) -> None:
        """No token before ``when`` (monotonic), then one, earning from there: the
        tokens saved before are dropped. A hold ending before one already in force
        changes nothing."""
        if self._held_until is not None and when <= self._held_until:
            when = self._held_until
        self._held_until = when
        self._tat = when + (self._burst - 1) * self._interval
