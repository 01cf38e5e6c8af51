"""Ticket transcripts: ``ticket-<id>.txt``, every stored message of a ticket with its
time, author and content, posted into the ticket's threads by ``!transcript`` and,
with ``tickets.transcript_on_close``, at every close (docs/commands.md,
"Transcripts").

The text is built from the stored messages when the outbox delivers
:class:`~bridge.core.operations.PostTranscript`, by the pure :func:`transcript_text`.
Times are in the session's ``business_hours.timezone``, else UTC; the header says
which.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo

from bridge.config import SessionConfig
from bridge.core import command_texts as texts
from bridge.core.command_args import no_args
from bridge.core.command_model import CommandReply, Invocation, Services
from bridge.core.senders import BOT, BOT_NAME, PHONE, PHONE_NAME
from bridge.core.tickets import TicketView
from bridge.db.messages import MessageRow
from bridge.model import (
    AnyContent,
    ContactCard,
    ContactList,
    Deletion,
    Edit,
    Location,
    Media,
    MediaKind,
    Reaction,
    Receipt,
    Text,
    Unsupported,
    content_from_dict,
    default_filename,
)

__all__ = [
    "TRANSCRIPT_LIMIT",
    "run_transcript",
    "transcript_file",
    "transcript_filename",
    "transcript_text",
    "transcript_zone",
]

TRANSCRIPT_LIMIT = 10_000
"""A transcript holds at most this many messages, then says it stops there."""
_EXCERPT = 40


async def run_transcript(services: Services, call: Invocation) -> CommandReply:
    no_args(call)
    ticket = await services.tickets.post_transcript(call.ticket_id)
    return CommandReply(texts.transcript_coming(ticket.id, filename=transcript_filename(ticket.id)))


def transcript_filename(ticket_id: int) -> str:
    return f"ticket-{ticket_id}.txt"


def transcript_zone(session: SessionConfig) -> tzinfo:
    """The session's business hours' time zone, else UTC."""
    return session.business_hours.tzinfo if session.business_hours else UTC


def transcript_file(ticket_id: int, text: str) -> Media:
    """The transcript as the file posted into the thread."""
    data = text.encode("utf-8")
    return Media(
        media_kind=MediaKind.DOCUMENT,
        mimetype="text/plain",
        data=data,
        filename=transcript_filename(ticket_id),
        size=len(data),
    )


def transcript_text(
    ticket: TicketView, messages: Sequence[MessageRow], *, tz: tzinfo, complete: bool = True
) -> str:
    """The transcript of ``ticket`` from its stored ``messages`` (oldest first): a
    header, then one entry per message, ``[2026-12-05 14:03:07] Maria: text``, the
    lines after a message's first indented. ``complete`` False: the messages stop
    at :data:`TRANSCRIPT_LIMIT`, which the last line says."""
    by_wa_id = {row.wa_id: row for row in messages if row.wa_id}
    zone = getattr(tz, "key", None) or tz.tzname(None) or "UTC"
    lines = [
        f"Ticket #{ticket.id} · {ticket.label} · {ticket.session_key}",
        f"Times in {zone}",
        "",
    ]
    for row in messages:
        when = datetime.fromtimestamp(row.timestamp, tz).strftime("%Y-%m-%d %H:%M:%S")
        author = _author(ticket, row) + (" (note)" if row.is_note else "")
        content = _content_line(row, by_wa_id)
        first, *rest = content.split("\n")
        lines.append(f"[{when}] {author}: {first}")
        lines.extend(f"    {line}" for line in rest)
    if not messages:
        lines.append("(no messages)")
    if not complete:
        lines.append(f"(the transcript stops at {len(messages)} messages)")
    return "\n".join(lines) + "\n"


def _author(ticket: TicketView, row: MessageRow) -> str:
    if row.direction == "in":
        if ticket.is_group:
            return row.sender_name or row.sender
        return row.sender_name or ticket.contact_name
    if row.sender == BOT:
        return BOT_NAME
    if row.sender == PHONE:
        return PHONE_NAME
    return row.sender_name or row.sender


def _content_line(row: MessageRow, by_wa_id: Mapping[str, MessageRow]) -> str:
    try:
        content = content_from_dict(row.content)
    except ValueError:
        return f"[a {row.kind} message that cannot be read]"
    return _shown(content, row, by_wa_id)


def _shown(content: AnyContent, row: MessageRow, by_wa_id: Mapping[str, MessageRow]) -> str:
    match content:
        case Text(body=body):
            return body
        case Media():
            name = content.filename or default_filename(
                content.media_kind, content.mimetype, str(row.id)
            )
            shown = f"[{content.media_kind.value}: {name}]"
            return f"{shown} {content.caption}" if content.caption else shown
        case Location():
            kind = "live location" if content.live else "location"
            place = ", ".join(p for p in (content.name, content.address) if p)
            where = f"{content.lat}, {content.lon}"
            return f"[{kind}: {where} ({place})]" if place else f"[{kind}: {where}]"
        case ContactCard(display_name=name):
            return f"[contact: {name}]"
        case ContactList(cards=cards):
            return f"[contacts: {', '.join(card.display_name for card in cards)}]"
        case Unsupported():
            return f"[{content.placeholder}]"
        case Reaction(emoji=""):
            return f"[removed a reaction from {_target(content.target, by_wa_id)}]"
        case Reaction(emoji=emoji):
            return f"[reacted {emoji} to {_target(content.target, by_wa_id)}]"
        case Edit(new=new):
            return f"[edited {_target(content.target, by_wa_id)} to:] {new.body}"
        case Deletion():
            return f"[deleted {_target(content.target, by_wa_id)}]"
        case Receipt():
            return f"[{content.kind}]"


def _target(wa_id: str, by_wa_id: Mapping[str, MessageRow]) -> str:
    """The message an action names, by an excerpt when it is one of the ticket's."""
    row = by_wa_id.get(wa_id)
    if row is None:
        return "a message"
    try:
        excerpt = _shown(content_from_dict(row.content), row, {}).replace("\n", " ")
    except ValueError:
        return "a message"
    if len(excerpt) > _EXCERPT:
        excerpt = excerpt[: _EXCERPT - 1] + "…"
    return f'"{excerpt}"'
