"""The outbound operations of the WhatsApp sessions: what the core asks of them
(``WhatsAppSessions`` in ``bridge/core/session_port.py``), in front of the engine.

Sends (templates too), reactions, edits and deletions go through the session's
:class:`~bridge.whatsapp.pacing.Pacer`: paced, and completed in the order they were
asked for. Read receipts and typing indicators are paced by a budget of their own
(:mod:`bridge.whatsapp.presence_pacing`, docs/presence.md); downloads are not paced.
Every operation needs the session ``CONNECTED`` (the status
:mod:`bridge.whatsapp.sessions` decides) and raises :class:`SessionNotConnected`
otherwise, also when the session drops while a paced operation waits its turn.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from bridge.clock import Clock
from bridge.errors import NotOwner, SessionNotConnected
from bridge.model import Content, Media, Quote
from bridge.whatsapp.engine import Engine
from bridge.whatsapp.presence_pacing import PresencePacer
from bridge.whatsapp.session_state import SessionState
from bridge.whatsapp.status import SessionStatus

T = TypeVar("T")


class SessionOutbound:
    """Outbound operations of every session: ``session`` finds a session's state by key
    (raising ``InvalidInput`` for an unknown one), ``engine`` gives the engine;
    ``presence_per_minute`` and ``presence_burst`` size each number's presence budget."""

    def __init__(
        self,
        *,
        session: Callable[[str], SessionState],
        engine: Callable[[], Engine],
        clock: Clock,
        presence_per_minute: int = 30,
        presence_burst: int = 5,
    ) -> None:
        self._session = session
        self._engine = engine
        self._clock = clock
        self._presence_rate = (presence_per_minute, presence_burst)
        self._presence: dict[str, PresencePacer] = {}
        self.fence: Callable[[str], Awaitable[bool]] | None = None
        """The lease check made just before each paced operation reaches the engine
        (docs/cluster.md#ownership-and-fencing); None when running alone."""

    async def send(
        self,
        key: str,
        to: str,
        content: Content,
        *,
        quote: Quote | None = None,
        message_id: str | None = None,
    ) -> str:
        """Send ``content`` to ``to`` (paced, in order); the new WhatsApp id.

        ``message_id`` is passed to the engine (the id to give the message, so a
        resent delivery is dropped by the recipient; see :mod:`bridge.whatsapp.engine`).
        Raises :class:`SessionNotConnected` at once when the session is not
        CONNECTED, or when it drops while the send waits its turn.
        """
        return await self._paced(
            key,
            lambda engine: engine.send(key, to, content, quote=quote, message_id=message_id),
        )

    async def react(
        self,
        key: str,
        to: str,
        *,
        target: str,
        target_sender: str | None,
        emoji: str,
        message_id: str | None = None,
    ) -> str:
        return await self._paced(
            key,
            lambda engine: engine.react(
                key,
                to,
                target=target,
                target_sender=target_sender,
                emoji=emoji,
                message_id=message_id,
            ),
        )

    async def edit(
        self, key: str, to: str, *, target: str, text: str, message_id: str | None = None
    ) -> str:
        return await self._paced(
            key,
            lambda engine: engine.edit(key, to, target=target, text=text, message_id=message_id),
        )

    async def revoke(self, key: str, to: str, *, target: str, message_id: str | None = None) -> str:
        return await self._paced(
            key, lambda engine: engine.revoke(key, to, target=target, message_id=message_id)
        )

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
        """Send the approved template ``name`` (the Cloud API), paced like :meth:`send`."""
        return await self._paced(
            key,
            lambda engine: engine.send_template(
                key, to, name=name, language=language, params=params, message_id=message_id
            ),
        )

    async def account_facts(self, key: str) -> dict[str, str]:
        """What the engine reports about the number (``!status``): not paced, and asked
        in any status (the Cloud API answers while the session is down)."""
        self._session(key)
        return await self._engine().account_facts(key)

    async def mark_read(self, key: str, chat: str, *, ids: list[str], sender: str) -> None:
        """Read receipts: paced by the presence budget (they are not messages), and only
        when CONNECTED."""
        session = self._session(key)
        self._require_connected(session)
        engine = self._engine()

        async def mark() -> None:
            self._require_connected(session)
            if self.fence is not None and not await self.fence(key):
                raise NotOwner(key)
            await engine.mark_read(key, chat, ids=ids, sender=sender)

        await self._presence_of(key).wait(mark)

    async def chat_presence(self, key: str, to: str, *, state: str) -> bool:
        """Typing (``composing``) or not (``paused``) to ``to``, when CONNECTED and a
        presence token is there; False when dropped or the engine cannot show it."""
        session = self._session(key)
        self._require_connected(session)
        engine = self._engine()
        return await self._presence_of(key).if_token(
            lambda: engine.chat_presence(key, to, state=state)
        )

    def _presence_of(self, key: str) -> PresencePacer:
        pacer = self._presence.get(key)
        if pacer is None:
            per_minute, burst = self._presence_rate
            pacer = PresencePacer(per_minute=per_minute, burst=burst, clock=self._clock)
            self._presence[key] = pacer
        return pacer

    async def download(self, key: str, media: Media) -> bytes:
        """The bytes of inbound ``media``: not paced; whatsmeow needs the connection."""
        if media.data is not None:
            return media.data
        session = self._session(key)
        self._require_connected(session)
        return await self._engine().download(key, media)

    async def _paced(self, key: str, operation: Callable[[Engine], Awaitable[T]]) -> T:
        session = self._session(key)
        self._require_connected(session)
        engine = self._engine()
        return await session.pacer.run(
            lambda: self._fenced(key, operation, engine),
            check=lambda: self._require_connected(session),
        )

    async def _fenced(
        self, key: str, operation: Callable[[Engine], Awaitable[T]], engine: Engine
    ) -> T:
        """The operation, if this instance still holds the session's lease."""
        if self.fence is not None and not await self.fence(key):
            raise NotOwner(key)
        return await operation(engine)

    @staticmethod
    def _require_connected(session: SessionState) -> None:
        if session.status is not SessionStatus.CONNECTED:
            raise SessionNotConnected(f"session {session.key} is {session.shown_status}")


class OutboundCalls:
    """The session manager's outbound methods (``send``, ``react``, ``edit``, …), each
    handed on to its :class:`SessionOutbound`; kept here so the manager stays about
    the sessions' status."""

    _outbound: SessionOutbound

    async def send(
        self,
        key: str,
        to: str,
        content: Content,
        *,
        quote: Quote | None = None,
        message_id: str | None = None,
    ) -> str:
        return await self._outbound.send(key, to, content, quote=quote, message_id=message_id)

    async def react(
        self,
        key: str,
        to: str,
        *,
        target: str,
        target_sender: str | None,
        emoji: str,
        message_id: str | None = None,
    ) -> str:
        return await self._outbound.react(
            key, to, target=target, target_sender=target_sender, emoji=emoji, message_id=message_id
        )

    async def edit(
        self, key: str, to: str, *, target: str, text: str, message_id: str | None = None
    ) -> str:
        return await self._outbound.edit(key, to, target=target, text=text, message_id=message_id)

    async def revoke(self, key: str, to: str, *, target: str, message_id: str | None = None) -> str:
        return await self._outbound.revoke(key, to, target=target, message_id=message_id)

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
        return await self._outbound.send_template(
            key, to, name=name, language=language, params=params, message_id=message_id
        )

    async def account_facts(self, key: str) -> dict[str, str]:
        return await self._outbound.account_facts(key)

    async def mark_read(self, key: str, chat: str, *, ids: list[str], sender: str) -> None:
        await self._outbound.mark_read(key, chat, ids=ids, sender=sender)

    async def chat_presence(self, key: str, to: str, *, state: str) -> bool:
        return await self._outbound.chat_presence(key, to, state=state)

    async def download(self, key: str, media: Media) -> bytes:
        return await self._outbound.download(key, media)
