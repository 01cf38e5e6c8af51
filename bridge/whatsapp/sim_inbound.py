"""A simulated session receiving a customer message (docs/sim.md, "Inbound bodies"):
the body read into a :class:`~bridge.model.Message`, the sender's LID and phone
linked (:func:`bridge.whatsapp.sim_session.identified`, the link stored through
:class:`~bridge.whatsapp.sim_shared.SessionKeeping`), the message made quotable, a
``ContactUpdateEvent`` when the push name, the avatar or the link is new, then the
``MessageEvent``. With a shared network, :func:`hold` keeps the message for the
instance that runs the session instead (:class:`~bridge.whatsapp.sim_shared.HeldInbound`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bridge.errors import DatabaseError, InvalidInput
from bridge.model import Edit, Party
from bridge.whatsapp.engine import ContactUpdateEvent, EventHandler, MessageEvent
from bridge.whatsapp.sim_bodies import message_from_inbound, read_avatar_url, read_inbound_id
from bridge.whatsapp.sim_session import (
    KnownMessage,
    SimSession,
    apply_edit,
    identified,
    preview_text,
)
from bridge.whatsapp.sim_shared import HeldInbound, SessionKeeping

log = logging.getLogger("bridge.whatsapp.sim")


async def receive(
    session: SimSession,
    body: Mapping[str, Any],
    *,
    wa_id: str,
    timestamp: float,
    keeping: SessionKeeping,
    emit: EventHandler,
) -> None:
    """The connected ``session`` receives the inbound ``body`` as message ``wa_id``."""
    message = message_from_inbound(
        body, wa_id=wa_id, timestamp=timestamp, quote_of=session.quote_of
    )
    avatar_url = read_avatar_url(body)
    message, linked = identified(session, message)
    if linked and message.sender.phone and message.sender.lid:
        await keeping.link_lid(session, message.sender.lid, message.sender.phone)
    session.known[wa_id] = KnownMessage(
        author=message.sender.address, text=preview_text(message.content), chat=message.chat
    )
    if isinstance(message.content, Edit):
        apply_edit(session, message.content.target, message.content.new.body)
    await _learn_contact(session, message.sender, avatar_url, linked=linked, emit=emit)
    log.debug("sim session %s: inbound %s %s", session.key, message.kind_label, wa_id)
    await emit(MessageEvent(session.key, message=message))


async def _learn_contact(
    session: SimSession,
    sender: Party,
    avatar_url: str | None,
    *,
    linked: bool,
    emit: EventHandler,
) -> None:
    """Emit a ContactUpdateEvent when the sender's push name or avatar is new, or
    when this message linked its LID and phone."""
    if sender.is_group:
        return
    who = sender.lid or sender.address  # the LID stays when the phone is learned
    new_name = bool(sender.name) and session.push_names.get(who) != sender.name
    new_avatar = avatar_url is not None and session.avatars.get(who) != avatar_url
    if not (new_name or new_avatar or linked):
        return
    if new_name and sender.name:
        session.push_names[who] = sender.name
    if avatar_url is not None:
        session.avatars[who] = avatar_url
    await emit(ContactUpdateEvent(session.key, party=sender, avatar_url=session.avatars.get(who)))


async def hold(
    session: SimSession,
    body: Mapping[str, Any],
    *,
    new_id: Callable[[], str],
    now: float,
    held: HeldInbound,
    announce: Callable[[], Awaitable[None]] | None,
) -> str:
    """Hold a customer message for the instance that runs ``session``, checked as
    :func:`receive` would read it; ``announce`` tells the other instances. Returns
    its WhatsApp id."""
    key = session.key
    if session.device is None:
        raise InvalidInput(f"session {key} has no linked device to hold messages for")
    wa_id = read_inbound_id(body) or new_id()
    message = message_from_inbound(body, wa_id=wa_id, timestamp=now, quote_of=session.quote_of)
    identified(session, message)  # refuses a LID linked to another phone now
    await held.hold(key, wa_id=wa_id, body=dict(body), posted_at=now)
    log.debug("sim session %s: inbound %s held", key, wa_id)
    if announce is not None:
        try:
            await announce()
        except DatabaseError as exc:  # held already; the owner's polling finds it
            log.warning("sim session %s: could not announce %s: %s", key, wa_id, exc)
    return wa_id
