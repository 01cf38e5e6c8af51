"""The whatsmeow engine's calls into a connected neonize client: sends, reactions,
edits, deletions, read receipts and downloads.

Each call runs inside :meth:`ClientSessions.op
<bridge.whatsapp.whatsmeow_client.ClientSessions.op>` (only while the client is
connected), resolves addresses to the JIDs WhatsApp knows
(:class:`~bridge.whatsapp.phone_spellings.PhoneSpellings`) and builds the protobufs
with :mod:`bridge.whatsapp.wa_outbound`; voice notes and stickers are converted for
WhatsApp by :mod:`bridge.whatsapp.transcode`. The ids it returns are whatsmeow's own:
neonize cannot pass a caller-chosen one (see :mod:`bridge.whatsapp.whatsmeow`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable

from neonize.exc import NeonizeError
from neonize.proto import Neonize_pb2 as neonize
from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as wa
from neonize.utils.enum import ChatPresence, ChatPresenceMedia, ReceiptType

from bridge.clock import Clock
from bridge.errors import EngineError, InvalidInput
from bridge.model import (
    ContactCard,
    ContactList,
    Content,
    Location,
    Media,
    Quote,
    Text,
)
from bridge.whatsapp import jid as jids
from bridge.whatsapp import wa_outbound as outbound
from bridge.whatsapp.phone_spellings import PhoneSpellings
from bridge.whatsapp.transcode import MediaConverter
from bridge.whatsapp.wa_inbound_content import download_message
from bridge.whatsapp.whatsmeow_client import ClientSession, ClientSessions


class ClientOutbound:
    """What the bridge asks of a session's connected client."""

    def __init__(
        self,
        *,
        sessions: ClientSessions,
        clock: Clock,
        converter: MediaConverter,
        spellings: PhoneSpellings,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._converter = converter
        self._spellings = spellings

    async def send(self, key: str, to: str, content: Content, *, quote: Quote | None) -> str:
        async def build(session: ClientSession, _chat: str) -> wa.Message:
            context = await self._quote_context(session, quote) if quote else None
            return await self._build(session, content, context)

        return await self._send_to(key, to, build, f"sending a {content.kind} to {to}")

    async def react(
        self, key: str, to: str, *, target: str, target_sender: str | None, emoji: str
    ) -> str:
        async def build(session: ClientSession, chat: str) -> wa.Message:
            sender = await self._resolve(session, target_sender) if target_sender else None
            return outbound.reaction_message(
                chat=chat,
                target=target,
                target_sender=jids.jid_to_str(sender) if sender is not None else None,
                emoji=emoji,
                now_ms=self._now_ms(),
            )

        return await self._send_to(key, to, build, f"reacting in {to}")

    async def edit(self, key: str, to: str, *, target: str, text: str) -> str:
        async def build(_session: ClientSession, chat: str) -> wa.Message:
            return outbound.edit_message(chat=chat, target=target, text=text, now_ms=self._now_ms())

        return await self._send_to(key, to, build, f"editing a message in {to}")

    async def revoke(self, key: str, to: str, *, target: str) -> str:
        async def build(_session: ClientSession, chat: str) -> wa.Message:
            return outbound.revoke_message(chat=chat, target=target)

        return await self._send_to(key, to, build, f"deleting a message in {to}")

    async def mark_read(self, key: str, chat: str, *, ids: list[str], sender: str) -> None:
        if not ids:
            return
        async with self._sessions.op(key) as session:
            chat_jid = await self._resolve(session, chat)
            sender_jid = await self._resolve(session, sender)
            try:
                await session.client.mark_read(
                    *ids,
                    chat=chat_jid,
                    sender=sender_jid,
                    receipt=ReceiptType.READ,
                    timestamp=int(self._clock.now()),
                )
            except NeonizeError as exc:
                raise EngineError(f"WhatsApp refused the read receipt in {chat}: {exc}") from exc

    async def chat_presence(self, key: str, to: str, *, state: str) -> bool:
        """Typing (``composing``) or not (``paused``) in the chat with ``to``."""
        presence = _CHAT_PRESENCE.get(state)
        if presence is None:
            raise InvalidInput(f"unknown chat presence {state!r}")
        async with self._sessions.op(key) as session:
            chat_jid = await self._resolve(session, to)
            try:
                await session.client.send_chat_presence(
                    chat_jid, presence, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT
                )
            except NeonizeError as exc:
                raise EngineError(f"WhatsApp refused the typing indicator in {to}: {exc}") from exc
        return True

    async def download(self, key: str, media: Media) -> bytes:
        if media.data is not None:
            return media.data
        if not media.ref:
            raise EngineError("the file has neither bytes nor a WhatsApp download reference")
        try:
            message = download_message(media.ref)
        except InvalidInput as exc:
            raise EngineError(exc.explanation) from exc
        async with self._sessions.op(key) as session:
            try:
                data = await session.client.download_any(message)
            except NeonizeError as exc:
                raise EngineError(_download_failure(media, exc)) from exc
        if not data:
            raise EngineError(f"WhatsApp returned an empty {media.media_kind.value} file")
        return data

    async def _send_to(
        self,
        key: str,
        to: str,
        build: Callable[[ClientSession, str], Awaitable[wa.Message]],
        what: str,
    ) -> str:
        """Send the message ``build`` makes for the chat ``to`` (given its JID)."""
        async with self._sessions.op(key) as session:
            chat = await self._resolve(session, to)
            message = await build(session, jids.jid_to_str(chat))
            return await self._send(session, chat, message, what)

    def _now_ms(self) -> int:
        return int(self._clock.now() * 1000)

    async def _send(
        self, session: ClientSession, chat: neonize.JID, message: wa.Message, what: str
    ) -> str:
        try:
            response = await session.client.send_message(chat, message)
        except NeonizeError as exc:
            raise EngineError(f"WhatsApp refused {what}: {exc}") from exc
        if not response.ID:
            raise EngineError(f"WhatsApp gave no message id when {what}")
        return response.ID

    async def _resolve(self, session: ClientSession, address: str) -> neonize.JID:
        check = getattr(session.client, "is_on_whatsapp", None)
        return await self._spellings.jid(address, ask=check if callable(check) else None)

    async def _quote_context(self, session: ClientSession, quote: Quote) -> wa.ContextInfo:
        if quote.sender is None:
            own = session.me.jid
            participant = jids.jid_to_str(own) if own is not None else ""
        else:
            participant = jids.jid_to_str(await self._resolve(session, quote.sender))
        return outbound.quote_context(quote, participant=participant)

    async def _build(
        self, session: ClientSession, content: Content, context: wa.ContextInfo | None
    ) -> wa.Message:
        if isinstance(content, Text):
            return outbound.text_message(content, context=context)
        if isinstance(content, Media):
            return await self._media_message(session, content, context)
        if isinstance(content, Location):
            return outbound.location_message(content, context=context)
        if isinstance(content, ContactCard):
            return outbound.contact_message(content, context=context)
        if isinstance(content, ContactList):
            return outbound.contacts_message(content, context=context)
        raise EngineError(f"a {content.kind} message cannot be sent to WhatsApp")

    async def _media_message(
        self, session: ClientSession, media: Media, context: wa.ContextInfo | None
    ) -> wa.Message:
        data = media.data if media.data is not None else await self.download(session.key, media)
        ready = await self._converter.for_whatsapp(media, data)
        kind = outbound.upload_media_type(media.media_kind)
        try:
            upload = await session.client.upload(ready.data, kind)
        except NeonizeError as exc:
            what = media.media_kind.value
            raise EngineError(f"uploading the {what} to WhatsApp failed: {exc}") from exc
        return outbound.media_message(
            media,
            upload,
            mimetype=ready.mimetype,
            now=self._clock.now(),
            context=context,
            duration=ready.duration,
            ident=hashlib.sha256(ready.data).hexdigest()[:10],
        )


def _download_failure(media: Media, exc: Exception) -> str:
    text = str(exc)
    what = f"the {media.media_kind.value}"
    if re.search(r"\b(404|410)\b|expired|not found", text, re.IGNORECASE):
        return f"{what} is no longer on WhatsApp's servers (media expires after some weeks): {text}"
    return f"downloading {what} from WhatsApp failed: {text}"


_CHAT_PRESENCE = {
    "composing": ChatPresence.CHAT_PRESENCE_COMPOSING,
    "paused": ChatPresence.CHAT_PRESENCE_PAUSED,
}
