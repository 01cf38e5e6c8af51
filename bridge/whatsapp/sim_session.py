"""What the sim engine knows of one simulated session: its link, a pending login,
the messages it can quote, and the LID ↔ phone links (docs/sim.md, "LIDs").

The first inbound body with both a LID and a phone links them, as WhatsApp's LID
store does: the engine stores the link at once (:mod:`bridge.whatsapp.sim_shared`)
and later bodies with either one give the sender both. A body that would give a LID
a second phone (or a phone a second LID) is refused.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from bridge.errors import InvalidInput
from bridge.model import (
    AnyContent,
    ContactCard,
    ContactList,
    Location,
    Media,
    Message,
    Party,
    Quote,
    Text,
)
from bridge.whatsapp.sim_store import SimDevice, SimSessionStore

PRESENCE_KEPT = 1000
"""Read marks and typing changes the sim remembers per session (the newest)."""


@dataclass
class PendingLogin:
    noise_key: str
    identity_key: str
    adv_secret: str
    pair_phone: str | None = None
    qr: str | None = None
    pair_code: str | None = None
    task: asyncio.Task[None] | None = None


@dataclass(frozen=True)
class KnownMessage:
    author: str | None  # address of the author; None = us (the bridge)
    text: str
    chat: Party


@dataclass
class SimSession:
    key: str
    store: SimSessionStore
    device: SimDevice | None
    outbound: list[dict[str, Any]]
    connected: bool = False
    halt: str | None = None  # BANNED / OUTDATED / STOPPED after a fault or a stop
    refuse_until: float = 0.0
    refuse_reason: str = ""
    login: PendingLogin | None = None
    fail_sends: int = 0
    fail_error: str = ""
    known: dict[str, KnownMessage] = field(default_factory=dict)
    sent_ids: set[str] = field(default_factory=set)  # ids of our outbound entries
    push_names: dict[str, str] = field(default_factory=dict)
    avatars: dict[str, str] = field(default_factory=dict)
    read_ids: list[str] = field(default_factory=list)
    # typing shown to customers, oldest first, the newest PRESENCE_KEPT (docs/sim.md)
    chat_presence: list[dict[str, Any]] = field(default_factory=list)
    lid_phones: dict[str, str] = field(default_factory=dict)  # LID digits → E.164
    phone_lids: dict[str, str] = field(default_factory=dict)  # E.164 → LID digits
    loaded: bool = True  # False until read back from a shared network (sim_shared)

    @property
    def link_status(self) -> str:
        if self.connected:
            return "CONNECTED"
        if self.login is not None:
            return "QRCODE"
        if self.halt is not None:
            return self.halt
        return "DISCONNECTED" if self.device is not None else "LOGGED_OUT"

    def quote_of(self, wa_id: str) -> Quote:
        known = self.known.get(wa_id)
        if known is None:
            return Quote(wa_id=wa_id)
        return Quote(wa_id=wa_id, sender=known.author, text=known.text)


def apply_edit(session: SimSession, target: str, text: str) -> None:
    """Keep quoting an edited message faithful: a reply quotes its new text."""
    known = session.known.get(target)
    if known is not None:
        session.known[target] = dataclasses.replace(known, text=text)


def identified(session: SimSession, message: Message) -> tuple[Message, bool]:
    """``message`` with its sender's other half (phone or LID) where the session's LID
    store knows it, and whether this message links the two (the caller stores it).
    Raises :class:`InvalidInput` for a LID or phone already linked to another."""
    sender = message.sender
    phone, lid = sender.phone, sender.lid
    linked = phone is not None and lid is not None and lid not in session.lid_phones
    if phone is not None and lid is not None:
        check_link(session, phone, lid)
        return message, linked
    known_phone = session.lid_phones.get(lid) if lid else None
    known_lid = session.phone_lids.get(phone) if phone else None
    if known_phone is None and known_lid is None:
        return message, False
    sender = dataclasses.replace(sender, phone=phone or known_phone, lid=lid or known_lid)
    chat = message.chat if message.chat.is_group else sender
    return dataclasses.replace(message, sender=sender, chat=chat), False


def check_link(session: SimSession, phone: str, lid: str) -> None:
    known_phone = session.lid_phones.get(lid)
    if known_phone not in (None, phone):
        raise InvalidInput(f"lid {lid}@lid is linked to another phone, not to {phone}")
    known_lid = session.phone_lids.get(phone)
    if known_lid not in (None, lid):
        raise InvalidInput(f"{phone} is linked to another LID, not to {lid}@lid")


def preview_text(content: AnyContent) -> str:
    """What a reply to this content quotes."""
    if isinstance(content, Text):
        return content.body
    if isinstance(content, Media):
        return content.caption or ""
    if isinstance(content, Location):
        return content.name or ""
    if isinstance(content, ContactCard | ContactList):
        return content.display_name
    return ""
