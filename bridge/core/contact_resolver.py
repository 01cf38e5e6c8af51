"""Who a WhatsApp message is from: the contact of a chat, found or created.

A customer is known by a phone, a LID, or both. When WhatsApp tells that a LID
belongs to a phone that has a contact of its own, the LID-only contact is merged
into the phone's (its active ticket is closed by the merge, see
:meth:`bridge.db.contacts.ContactRepository.merge`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bridge.db import ContactRow, Repositories
from bridge.model import Message, Party
from bridge.phone import normalize_phone

log = logging.getLogger("bridge.core.contact_resolver")


@dataclass(frozen=True)
class Person:
    """A message's contact and what finding it changed."""

    contact: ContactRow
    closed_ids: tuple[int, ...] = ()  # tickets a LID ↔ phone merge closed
    changed: bool = False  # an existing contact took a phone, LID or name (or a merge)


class ContactResolver:
    """Finds (or creates) contacts; runs inside the caller's transaction."""

    def __init__(self, repos: Repositories) -> None:
        self._repos = repos

    async def of_message(self, session_id: int, message: Message, *, now: float) -> Person:
        """The chat's contact, and what finding it changed."""
        chat = message.chat
        if chat.group is not None:
            group = await self._repos.contacts.get_or_create_group(
                session_id, group_jid=chat.group, group_name=chat.name, now=now
            )
            return Person(group)
        # From the phone itself the envelope's push name is the business's own.
        push_name = None if message.from_me else chat.name
        return await self.person(session_id, chat, push_name=push_name, now=now)

    async def person(
        self, session_id: int, party: Party, *, push_name: str | None, now: float
    ) -> Person:
        """The contact of ``party`` (a phone, a LID or both), told its push name."""
        phone = normalize_phone(party.phone) if party.phone else None
        found = await self._repos.contacts.resolve(
            session_id, phone=phone, lid=party.lid, push_name=push_name, now=now
        )
        contact = found.contact
        if phone is None or party.lid is None or contact.lid == party.lid:
            return Person(contact, changed=found.changed)
        absorbed = await self._absorb_lid_contact(session_id, contact, party.lid, now)
        return absorbed or Person(contact, changed=found.changed)

    async def _absorb_lid_contact(
        self, session_id: int, contact: ContactRow, lid: str, now: float
    ) -> Person | None:
        """Fold the contact known only by ``lid`` into the phone's ``contact``."""
        other = await self._repos.contacts.find(session_id, lid=lid)
        if other is None or other.id == contact.id:
            return None
        merged = await self._repos.contacts.merge(keep_id=contact.id, drop_id=other.id, now=now)
        log.info(
            "contact %d (a LID) merged into contact %d; tickets closed: %s",
            other.id,
            contact.id,
            merged.closed_ticket_ids or "none",
        )
        return Person(merged.contact, tuple(merged.closed_ticket_ids), changed=True)
