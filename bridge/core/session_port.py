"""What the core asks of the WhatsApp sessions to deliver the outbox's WhatsApp rows
(the session manager fits): each call is paced per number and raises
``EngineError`` (``SessionNotConnected`` when the session is down)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bridge.model import Content, Media, Quote


class WhatsAppSessions(Protocol):
    async def send(
        self,
        key: str,
        to: str,
        content: Content,
        *,
        quote: Quote | None = None,
        message_id: str | None = None,
    ) -> str:
        """Send ``content`` from session ``key`` to ``to``; the WhatsApp id it got."""
        ...

    async def react(
        self,
        key: str,
        to: str,
        *,
        target: str,
        target_sender: str | None,
        emoji: str,
        message_id: str | None = None,
    ) -> str: ...

    async def edit(
        self, key: str, to: str, *, target: str, text: str, message_id: str | None = None
    ) -> str: ...

    async def revoke(
        self, key: str, to: str, *, target: str, message_id: str | None = None
    ) -> str: ...

    async def send_template(
        self,
        key: str,
        to: str,
        *,
        name: str,
        language: str,
        params: Sequence[str],
        message_id: str | None = None,
    ) -> str:
        """Send the approved template ``name`` (a Cloud API session); the WhatsApp id."""
        ...

    async def download(self, key: str, media: Media) -> bytes:
        """The bytes of ``media`` that arrived as a download reference."""
        ...

    async def mark_read(self, key: str, chat: str, *, ids: list[str], sender: str) -> None:
        """Mark ``sender``'s messages ``ids`` in ``chat`` read (paced by the presence
        budget; docs/presence.md)."""
        ...

    async def chat_presence(self, key: str, to: str, *, state: str) -> bool:
        """Show ``to`` that we are typing (``composing``) or stopped (``paused``);
        False when it was not shown (no presence token left, or the engine cannot)."""
        ...
