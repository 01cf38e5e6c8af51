"""Where the WhatsApp sessions' events go (the session manager's downstream, and the
``whatsapp`` journal's handler): the relay first, then the ops notifier."""

from __future__ import annotations

from bridge.core.ops import OpsNotifier
from bridge.core.relay import Relay
from bridge.whatsapp.engine import EngineEvent


class Downstream:
    def __init__(self, relay: Relay, notifier: OpsNotifier) -> None:
        self._relay = relay
        self._notifier = notifier

    async def __call__(self, event: EngineEvent) -> None:
        await self._relay.handle_engine_event(event)
        await self._notifier.on_engine_event(event)
