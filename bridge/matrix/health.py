"""Whether the homeserver still reaches the appservice (the homeserver → bridge
direction; the catch-up's watch pings the other one).

A homeserver that cannot deliver to the bridge says nothing to it: it queues the
events and retries with a back-off. So the appservice notes when the homeserver last
reached it (a transaction it acknowledged, or the homeserver's ping to
``/_matrix/app/v1/ping``), asks the homeserver every :data:`PING_EVERY_SECONDS` to
ping it (``POST /_matrix/client/v1/appservice/{id}/ping``; a success also makes
Synapse retry at once what it queued), and remembers the transactions it refused.
:meth:`AppserviceHealth.problems` turns that into ``/health`` problems:

- no contact for :data:`STALE_AFTER_SECONDS` (only when the homeserver supports the
  ping, otherwise a quiet hour would look like an outage);
- the homeserver's last ping of the appservice failed (its error);
- the last :data:`REFUSED_LIMIT` transactions were all refused (their reasons).

Only authenticated requests count: anyone can send a refused request.
"""

from __future__ import annotations

from collections import deque

from bridge.clock import Clock

__all__ = ["PING_EVERY_SECONDS", "REFUSED_LIMIT", "STALE_AFTER_SECONDS", "AppserviceHealth"]

PING_EVERY_SECONDS = 60.0
STALE_AFTER_SECONDS = 180.0  # three pings missed
REFUSED_LIMIT = 3


class AppserviceHealth:
    def __init__(
        self,
        *,
        clock: Clock,
        stale_after: float = STALE_AFTER_SECONDS,
        refused_limit: int = REFUSED_LIMIT,
    ) -> None:
        self._clock = clock
        self._stale_after = stale_after
        self._last_contact = clock.monotonic()  # counted from the start
        self._refused: deque[str] = deque(maxlen=refused_limit)  # in a row, newest last
        self._ping_failure: str | None = None
        self._pings_supported = True

    def reached(self) -> None:
        """The homeserver reached the appservice (its ping, an acknowledged transaction)."""
        self._last_contact = self._clock.monotonic()

    def transaction_answered(self, status: int, reason: str) -> None:
        """An authenticated transaction got ``status``; ``reason`` for a refusal."""
        if status < 400:
            self._refused.clear()
            self.reached()
        else:
            self._refused.append(f"{status} {reason}")

    def ping_succeeded(self) -> None:
        self._ping_failure = None

    def ping_failed(self, reason: str) -> None:
        """The homeserver answered that it could not ping the appservice."""
        self._ping_failure = reason

    def pings_unsupported(self) -> None:
        """The homeserver has no appservice ping: silence is then no sign of trouble."""
        self._pings_supported = False

    def problems(self) -> list[str]:
        found: list[str] = []
        silent = self._clock.monotonic() - self._last_contact
        if self._pings_supported and silent > self._stale_after:
            found.append(f"the homeserver has not reached the appservice for {silent:.0f} s")
        if self._ping_failure is not None:
            found.append(f"the homeserver cannot reach the appservice: {self._ping_failure}")
        if self._refused and len(self._refused) == self._refused.maxlen:
            reasons = "; ".join(self._refused)
            found.append(f"the last {len(self._refused)} transactions were refused: {reasons}")
        return found
