"""Several engines behind one: each session's calls go to the engine serving it.

A session's engine is its ``engine`` key, else ``whatsapp.engine``
(docs/configuration.md), so one bridge may run whatsmeow numbers next to numbers on
the Cloud API (docs/cloud.md). The session manager talks to one
:class:`~bridge.whatsapp.engine.Engine`; :class:`EngineRouter` is that engine when
more than one is in use, and :func:`one_engine` picks which to hand it. The router
emits nothing itself: each engine was built with the session manager's handler and
emits its own sessions' events to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack

from bridge.errors import EngineError
from bridge.model import Content, Media, Quote
from bridge.whatsapp.engine import Engine, EngineEvent, SessionSpec


def one_engine(engines: Mapping[str, Engine], engine_of: Mapping[str, str]) -> Engine:
    """The engine to hand the session manager: the only one built, or a router."""
    if len(engines) == 1 and set(engine_of.values()) <= set(engines):
        return next(iter(engines.values()))
    return EngineRouter(engines=engines, engine_of=engine_of)


async def _emit_nothing(event: EngineEvent) -> None:
    raise NotImplementedError(
        f"the engine router emits nothing; {event.session}'s engine emits its own events"
    )


class EngineRouter(Engine):
    """Routes every per-session call by the session key to its engine.

    ``engines``: by engine name (``whatsmeow``, ``sim``, ``cloud``);
    ``engine_of``: session key → engine name, for every session."""

    name = "router"

    def __init__(self, *, engines: Mapping[str, Engine], engine_of: Mapping[str, str]) -> None:
        super().__init__(_emit_nothing)
        missing = sorted(set(engine_of.values()) - set(engines))
        if missing:
            raise ValueError(f"sessions name engines that were not built: {', '.join(missing)}")
        self._engines = dict(engines)
        self._engine_of = dict(engine_of)

    def engine_for(self, key: str) -> Engine:
        """The engine serving session ``key``."""
        name = self._engine_of.get(key)
        if name is None:
            raise EngineError(f"no engine serves the session {key}: it is not configured")
        return self._engines[name]

    async def is_paired(self, spec: SessionSpec) -> bool:
        return await self.engine_for(spec.key).is_paired(spec)

    async def connect(self, spec: SessionSpec) -> None:
        await self.engine_for(spec.key).connect(spec)

    async def login(self, spec: SessionSpec, *, phone: str | None = None) -> None:
        await self.engine_for(spec.key).login(spec, phone=phone)

    async def disconnect(self, key: str) -> None:
        await self.engine_for(key).disconnect(key)

    async def logout(self, key: str) -> None:
        await self.engine_for(key).logout(key)

    async def send(
        self,
        key: str,
        to: str,
        content: Content,
        *,
        quote: Quote | None = None,
        message_id: str | None = None,
    ) -> str:
        engine = self.engine_for(key)
        return await engine.send(key, to, content, quote=quote, message_id=message_id)

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
        return await self.engine_for(key).react(
            key, to, target=target, target_sender=target_sender, emoji=emoji, message_id=message_id
        )

    async def edit(
        self, key: str, to: str, *, target: str, text: str, message_id: str | None = None
    ) -> str:
        engine = self.engine_for(key)
        return await engine.edit(key, to, target=target, text=text, message_id=message_id)

    async def revoke(self, key: str, to: str, *, target: str, message_id: str | None = None) -> str:
        return await self.engine_for(key).revoke(key, to, target=target, message_id=message_id)

    async def mark_read(self, key: str, chat: str, *, ids: list[str], sender: str) -> None:
        await self.engine_for(key).mark_read(key, chat, ids=ids, sender=sender)

    async def chat_presence(self, key: str, to: str, *, state: str) -> bool:
        return await self.engine_for(key).chat_presence(key, to, state=state)

    async def download(self, key: str, media: Media) -> bytes:
        return await self.engine_for(key).download(key, media)

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
        return await self.engine_for(key).send_template(
            key, to, name=name, language=language, params=params, message_id=message_id
        )

    async def account_facts(self, key: str) -> dict[str, str]:
        return await self.engine_for(key).account_facts(key)

    async def close(self) -> None:
        """Close every engine once (one serving two names too); an engine whose close
        fails does not keep the others open, and its error is raised afterwards."""
        distinct = {id(engine): engine for engine in self._engines.values()}
        async with AsyncExitStack() as stack:
            for engine in distinct.values():
                stack.push_async_callback(engine.close)
