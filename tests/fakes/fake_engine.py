"""A scripted WhatsApp engine for unit tests.

It records every call (with the fake clock's time), lets a test emit any event,
and scripts ``connect`` failures per session. By default it behaves like a
well-mannered engine: a successful ``connect`` emits ``ConnectedEvent``, ``login``
emits a QR code (or a pairing code for a phone), :meth:`FakeEngine.scan` pairs.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge.clock import Clock
from bridge.errors import EngineError
from bridge.model import Content, Media, Quote
from bridge.whatsapp.engine import (
    ConnectedEvent,
    DisconnectedEvent,
    Engine,
    EngineEvent,
    EventHandler,
    PairCodeEvent,
    PairSuccessEvent,
    QRCodeEvent,
    SessionSpec,
)


@dataclass(frozen=True)
class EngineCall:
    method: str
    key: str
    at: float
    args: dict[str, Any] = field(default_factory=dict)


class FakeEngine(Engine):
    name = "fake"

    def __init__(
        self,
        handler: EventHandler,
        *,
        clock: Clock,
        paired: Iterable[str] = (),
        phones: dict[str, str] | None = None,
    ) -> None:
        super().__init__(handler)
        self.clock = clock
        self.paired = set(paired)
        self.phones = dict(phones or {})
        self.calls: list[EngineCall] = []
        self.emit_connected = True  # a successful connect() emits ConnectedEvent
        self._connect_script: dict[str, deque[EngineError]] = {}
        self._ids = itertools.count(1)
        self.facts: dict[str, dict[str, str]] = {}  # account_facts per session

    # --- scripting ------------------------------------------------------------

    def fail_connects(self, key: str, times: int, *, explanation: str = "network down") -> None:
        """The next ``times`` connect() calls for ``key`` raise ``EngineError``."""
        script = self._connect_script.setdefault(key, deque())
        script.extend(EngineError(f"{explanation} ({n + 1})") for n in range(times))

    def clear_connect_failures(self, key: str) -> None:
        self._connect_script.pop(key, None)

    def calls_of(self, method: str, key: str | None = None) -> list[EngineCall]:
        return [c for c in self.calls if c.method == method and key in (None, c.key)]

    def times_of(self, method: str, key: str | None = None) -> list[float]:
        return [c.at for c in self.calls_of(method, key)]

    async def scan(self, key: str, phone: str) -> None:
        """The phone scans the QR code: paired and connected."""
        self.paired.add(key)
        self.phones[key] = phone
        await self.emit(PairSuccessEvent(key, phone=phone))
        await self.emit(ConnectedEvent(key, phone=phone))

    async def drop(self, key: str, reason: str = "connection lost") -> None:
        """A transient network loss."""
        await self.emit(DisconnectedEvent(key, reason=reason, transient=True))

    async def send_event(self, event: EngineEvent) -> None:
        await self.emit(event)

    def _record(self, method: str, key: str, **args: Any) -> None:
        self.calls.append(EngineCall(method, key, self.clock.now(), args))

    def _new_id(self) -> str:
        return f"FAKE{next(self._ids)}"

    # --- the Engine interface -----------------------------------------------------

    async def is_paired(self, spec: SessionSpec) -> bool:
        self._record("is_paired", spec.key)
        return spec.key in self.paired

    async def connect(self, spec: SessionSpec) -> None:
        self._record("connect", spec.key)
        script = self._connect_script.get(spec.key)
        if script:
            raise script.popleft()
        if self.emit_connected:
            await self.emit(ConnectedEvent(spec.key, phone=self.phones.get(spec.key)))

    async def login(self, spec: SessionSpec, *, phone: str | None = None) -> None:
        self._record("login", spec.key, phone=phone)
        if phone is not None:
            await self.emit(PairCodeEvent(spec.key, code="ABCD-EFGH", phone=phone))
        else:
            await self.emit(QRCodeEvent(spec.key, code=f"qr-{spec.key}", expires_in=60.0))

    async def disconnect(self, key: str) -> None:
        self._record("disconnect", key)

    async def logout(self, key: str) -> None:
        self._record("logout", key)
        self.paired.discard(key)

    async def send(
        self,
        key: str,
        to: str,
        content: Content,
        *,
        quote: Quote | None = None,
        message_id: str | None = None,
    ) -> str:
        self._record("send", key, to=to, content=content, quote=quote, message_id=message_id)
        return message_id or self._new_id()

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
        self._record(
            "react",
            key,
            to=to,
            target=target,
            target_sender=target_sender,
            emoji=emoji,
            message_id=message_id,
        )
        return message_id or self._new_id()

    async def edit(
        self, key: str, to: str, *, target: str, text: str, message_id: str | None = None
    ) -> str:
        self._record("edit", key, to=to, target=target, text=text, message_id=message_id)
        return message_id or self._new_id()

    async def revoke(self, key: str, to: str, *, target: str, message_id: str | None = None) -> str:
        self._record("revoke", key, to=to, target=target, message_id=message_id)
        return message_id or self._new_id()

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
        self._record(
            "send_template",
            key,
            to=to,
            name=name,
            language=language,
            params=tuple(params),
            message_id=message_id,
        )
        return message_id or self._new_id()

    async def account_facts(self, key: str) -> dict[str, str]:
        self._record("account_facts", key)
        return dict(self.facts.get(key, {}))

    async def mark_read(self, key: str, chat: str, *, ids: list[str], sender: str) -> None:
        self._record("mark_read", key, chat=chat, ids=ids, sender=sender)

    async def chat_presence(self, key: str, to: str, *, state: str) -> bool:
        self._record("chat_presence", key, to=to, state=state)
        return True

    async def download(self, key: str, media: Media) -> bytes:
        self._record("download", key, media=media)
        return media.data or b""
