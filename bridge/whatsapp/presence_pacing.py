"""The presence budget of one WhatsApp number (docs/presence.md): read receipts and
typing indicators have a token bucket of their own, so they never spend the tokens
of the number's messages (:mod:`bridge.whatsapp.pacing`), and never wait behind them.

Read receipts wait for a token, in the order they were asked for; a typing change
takes one only when one is there, and is dropped otherwise (shown late, it would
mislead the customer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bridge.clock import Clock
from bridge.token_bucket import TokenBucket


class PresencePacer:
    """Paces the presence updates of one WhatsApp number."""

    def __init__(self, *, per_minute: float, burst: int, clock: Clock) -> None:
        self._bucket = TokenBucket.per_minute(per_minute, burst=burst, clock=clock)
        self._order = asyncio.Lock()

    async def wait(self, operation: Callable[[], Awaitable[None]]) -> None:
        """Run ``operation`` once a token is there (read receipts)."""
        async with self._order:
            await self._bucket.wait_for_token()
            self._bucket.take()
            await operation()

    async def if_token(self, operation: Callable[[], Awaitable[bool]]) -> bool:
        """Run ``operation`` if a token is there now (typing); False when dropped."""
        if self._order.locked() or self._bucket.seconds_until_token() > 0:
            return False
        self._bucket.take()
        return await operation()
