"""What the session manager knows about one session (internal, mutable), and the
session's logger."""

from __future__ import annotations

import asyncio
import logging

from bridge.whatsapp.engine import SessionSpec
from bridge.whatsapp.pacing import Pacer
from bridge.whatsapp.status import SessionStatus


def session_logger(key: str) -> logging.Logger:
    """``bridge.session.<company>.<session>``."""
    return logging.getLogger(f"bridge.session.{key.replace('/', '.')}")


class SessionState:
    """What the manager knows about one session (internal, mutable)."""

    def __init__(self, spec: SessionSpec, pacer: Pacer) -> None:
        self.spec = spec
        self.key = spec.key
        self.log = session_logger(spec.key)
        self.pacer = pacer
        self.status: SessionStatus | None = None
        self.phone: str | None = None
        self.paired = False
        self.attempt = 0  # reconnect attempts since the last stable connection
        self.retry_delay = 0.0  # the delay before the next attempt, when DISCONNECTED
        self.connected_since: float | None = None  # monotonic, while CONNECTED
        self.connected_at: float | None = None  # epoch, while CONNECTED
        self.ban_until: float | None = None
        self.connector: asyncio.Task[None] | None = None  # waits and connects
        self.connecting = False  # an engine.connect call is in flight
        self.admin_logout = False
        self.released = False  # another instance owns it (docs/cluster.md)

    @property
    def shown_status(self) -> SessionStatus:
        return self.status if self.status is not None else SessionStatus.OPENING

    @property
    def connector_running(self) -> bool:
        return self.connector is not None and not self.connector.done()
