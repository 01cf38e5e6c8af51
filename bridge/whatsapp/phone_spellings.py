"""Which digits WhatsApp knows a phone number by.

A number may be spelled several ways (Brazil's ninth digit: ``+55 11 9 8765 4321``
may be ``5511987654321`` or ``551187654321`` on WhatsApp); sending to the wrong one
fails. The spelling is learned from traffic (every phone JID a message names) and,
for a number never seen, asked of WhatsApp with ``is_on_whatsapp``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from neonize.exc import NeonizeError
from neonize.proto import Neonize_pb2 as neonize

from bridge.errors import EngineError, InvalidInput
from bridge.phone import normalize_phone, whatsapp_variants
from bridge.whatsapp import jid as jids

log = logging.getLogger(__name__)

AskOnWhatsApp = Callable[..., Awaitable[Sequence[Any]]]
"""neonize's ``is_on_whatsapp(*phones)``: an ``IsOnWhatsAppResponse`` per phone."""


class PhoneSpellings:
    """E.164 → the digits WhatsApp knows that number by, in ``cache``."""

    def __init__(self, cache: MutableMapping[str, str] | None = None) -> None:
        self._users: MutableMapping[str, str] = cache if cache is not None else {}

    def learn(self, source: neonize.MessageSource) -> None:
        """Remember the spelling of every phone JID of a message."""
        for jid in (source.Chat, source.Sender, source.SenderAlt, source.RecipientAlt):
            if jids.is_phone(jid) and jid.User:
                try:
                    self._users[normalize_phone(jid.User)] = jid.User
                except InvalidInput:
                    log.debug("not a phone JID user: %r", jid.User)

    async def jid(self, address: str, *, ask: AskOnWhatsApp | None) -> neonize.JID:
        """The JID to send to: JIDs pass through; a phone becomes the spelling WhatsApp
        knows (learned from traffic, else asked with ``ask`` when the client has it)."""
        try:
            if "@" in address:
                return jids.address_jid(address)
            e164 = normalize_phone(address)
        except InvalidInput as exc:
            raise EngineError(exc.explanation) from exc
        known = self._users.get(e164)
        if known is not None:
            return jids.phone_jid(known)
        if ask is None:
            return jids.phone_jid(e164)
        try:
            answers = await ask(*("+" + digits for digits in whatsapp_variants(e164)))
        except NeonizeError as exc:
            raise EngineError(f"could not check whether {e164} is on WhatsApp: {exc}") from exc
        for answer in answers:
            if answer.IsIn and answer.JID.User:
                self._users[e164] = answer.JID.User
                return jids.non_ad(answer.JID)
        raise EngineError(f"{e164} is not on WhatsApp")
