"""The ``/sim`` wire format (docs/sim.md) the sim engine answers with.

Outbound-log entries are what ``GET /sim/sessions/{s}/outbound`` lists and
``outbound.jsonl`` keeps: the inbound field names (``kind``, ``text``, ``media``,
``location``, ``contact``, ``target``, ``emoji``, ``quote``) plus ``id``, ``to`` and
``timestamp``. Media entries give ``sha256``, ``size``, ``mimetype``, ``filename`` and
``caption`` instead of the bytes. A :class:`ContactList` is one WhatsApp message, so
one entry: kind ``contact`` with the first card in ``contact`` and every card in
``contacts``. The session view is what ``GET /sim/sessions/{s}`` answers.

Inbound bodies are read in :mod:`bridge.whatsapp.sim_bodies`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from bridge.errors import PermanentDeliveryError
from bridge.model import (
    AnyContent,
    ContactCard,
    ContactList,
    Deletion,
    Edit,
    Location,
    Media,
    Party,
    Reaction,
    Text,
)
from bridge.phone import digits_of
from bridge.whatsapp.sim_bodies import MEDIA_KINDS

# --- outbound-log entries -------------------------------------------------------


def _card_fields(card: ContactCard) -> dict[str, Any]:
    return {"display_name": card.display_name, "vcard": card.vcard}


def _media_fields(media: Media) -> dict[str, Any]:
    data = media.data
    size = len(data) if data is not None else media.size
    sha256 = hashlib.sha256(data).hexdigest() if data is not None else media.sha256
    return {
        "sha256": sha256,
        "size": size,
        "mimetype": media.mimetype,
        "filename": media.filename,
        "caption": media.caption,
    }


def outbound_fields(content: AnyContent) -> dict[str, Any]:
    """The outbound-log fields of ``content``, named as in a ``/sim`` inbound body.

    Media gives ``{sha256 (hex), size, mimetype, filename, caption}`` instead of
    bytes; a :class:`ContactList` gives kind ``contact`` with its first card in
    ``contact`` and all of them in ``contacts``. Raises
    :class:`PermanentDeliveryError` for content WhatsApp cannot be sent.
    """
    match content:
        case Text(body=body, mentions=mentions):
            out: dict[str, Any] = {"kind": "text", "text": body}
            if mentions:
                out["mentions"] = list(mentions)
            return out
        case Media():
            return {"kind": content.media_kind.value, "media": _media_fields(content)}
        case Location():
            loc = {"lat": content.lat, "lon": content.lon}
            return {
                "kind": "location",
                "location": loc | {"name": content.name, "address": content.address},
            }
        case ContactCard():
            return {"kind": "contact", "contact": _card_fields(content)}
        case ContactList(cards=cards) if cards:
            cards_out = [_card_fields(c) for c in cards]
            return {"kind": "contact", "contact": cards_out[0], "contacts": cards_out}
        case Reaction(target=target, emoji=emoji):
            return {"kind": "reaction", "target": target, "emoji": emoji}
        case Edit(target=target, new=new):
            return {"kind": "edit", "target": target, "text": new.body}
        case Deletion(target=target):
            return {"kind": "revoke", "target": target}
    raise PermanentDeliveryError(f"the sim cannot send {content.kind} content to WhatsApp")


def outbound_entry(
    *, wa_id: str, to: str, timestamp: float, fields: Mapping[str, Any], quote: str | None
) -> dict[str, Any]:
    """One outbound-log entry: ``id``, ``to``, ``timestamp``, the content's
    :func:`outbound_fields` and, for a reply, the quoted message's ``quote``."""
    entry: dict[str, Any] = {"id": wa_id, "to": to, "timestamp": timestamp}
    entry |= fields
    if quote is not None:
        entry["quote"] = quote
    return entry


def entry_preview(entry: Mapping[str, Any]) -> str:
    """What a reply to an outbound-log entry quotes (as
    :func:`bridge.whatsapp.sim_session.preview_text` does for content)."""
    if entry["kind"] == "text":
        return str(entry["text"])
    if entry["kind"] in MEDIA_KINDS:
        return entry["media"].get("caption") or ""
    if entry["kind"] == "location":
        return entry["location"].get("name") or ""
    if entry["kind"] == "contact":
        return str(entry["contact"]["display_name"])
    return ""


def entry_chat(entry: Mapping[str, Any]) -> Party:
    """The chat an outbound-log entry went to (its ``to``)."""
    address = str(entry["to"])
    if address.endswith("@g.us"):
        return Party(group=address)
    if address.endswith("@lid"):
        return Party(lid=digits_of(address))
    return Party(phone=address)


# --- the session view -------------------------------------------------------------


def session_view(
    *, status: str, phone: str | None, qr: str | None, pair_code: str | None
) -> dict[str, Any]:
    """What ``GET /sim/sessions/{s}`` answers."""
    return {"status": status, "phone": phone, "qr": qr, "pair_code": pair_code}
