"""What the whatsmeow engine tells the bridge about contacts: each sender's profile
picture, asked of WhatsApp once per run, and each contact update once.

whatsmeow repeats what it knows of a contact with every message and history sync;
the bridge needs a :class:`ContactUpdateEvent` only when something changed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from neonize.proto import Neonize_pb2 as neonize

from bridge.whatsapp.engine import ContactUpdateEvent, EngineEvent, MessageEvent

PictureLookup = Callable[[neonize.JID], Awaitable[str | None]]
"""The URL of a JID's profile picture; None when it has none or asking failed."""


class ContactNews:
    """Per engine run: the picture URL of each party address, and the last contact
    update passed on per session and party."""

    def __init__(self) -> None:
        self._avatars: dict[str, str | None] = {}  # party address → picture URL
        self._passed: dict[tuple[str, str], ContactUpdateEvent] = {}

    async def with_avatar(
        self, session: str, ev: neonize.Message, events: list[EngineEvent], lookup: PictureLookup
    ) -> list[EngineEvent]:
        """``events`` (of the message ``ev``) with the sender's profile picture URL,
        asked with ``lookup`` the first time this run hears from that person (a
        ContactUpdateEvent carries it)."""
        message = next((e.message for e in events if isinstance(e, MessageEvent)), None)
        if message is None or message.from_me or message.sender.is_group:
            return events
        address = message.sender.address
        if address in self._avatars:
            return events
        source = ev.Info.MessageSource.Sender
        url = await lookup(neonize.JID(User=source.User, Server=source.Server))
        self._avatars[address] = url
        if url is None:
            return events
        if any(isinstance(e, ContactUpdateEvent) and e.party.address == address for e in events):
            return events  # news() adds the URL
        update = ContactUpdateEvent(session=session, party=message.sender, avatar_url=url)
        return [update, *events]

    def news(self, event: EngineEvent) -> EngineEvent | None:
        """``event`` to pass on (a contact update with its known picture URL), or None
        for a contact update passed on already."""
        if not isinstance(event, ContactUpdateEvent):
            return event
        if event.avatar_url is None and self._avatars.get(event.party.address):
            event = replace(event, avatar_url=self._avatars[event.party.address])
        known = (event.session, event.party.address)
        if self._passed.get(known) == event:
            return None
        self._passed[known] = event
        return event
