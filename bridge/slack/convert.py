"""Neutral content ⇄ Slack message arguments. Pure functions: no client, no I/O.

Text markup goes through :mod:`bridge.formatting` (WhatsApp markup ⇄ Slack mrkdwn);
this module builds what surrounds it: the ticket card's Block Kit, the username a
customer posts under, readable renderings of locations and contacts, file names,
quotes, and reaction names (Slack's emoji names, :mod:`bridge.formatting.slack_emoji`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus

from bridge import formatting, vcard
from bridge.core.frontend import Author, AuthorKind, TicketCard
from bridge.formatting.slack_emoji import SLACK_EMOJI
from bridge.model import ContactCard, Location, Media, MediaKind, default_filename

ACCEPT_ACTION = "ticket_accept"
CLOSE_ACTION = "ticket_close"
ATTENDANT_LABEL = "attendant"
NOTE_LABEL = "internal note"
NOTE_LINE = "📝 _Note (internal, not sent to WhatsApp)_"
USERNAME_LIMIT = 80  # Slack truncates longer usernames

UserResolver = Callable[[str], str | None]


def escape(text: str) -> str:
    """Escape the three characters Slack mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- ticket card ------------------------------------------------------------------


def card_message(card: TicketCard) -> dict[str, Any]:
    """``text`` (notification fallback) and ``blocks`` of a ticket's thread root."""
    lines = [f"*Ticket #{card.ticket_id}* · {escape(card.who)}", f"Status: *{card.status}*"]
    if card.queue:
        lines.append(f"queue: {escape(card.queue)}")
    if card.assignee:
        lines.append(f"Assignee: {_assignee(card.assignee)}")
    if card.is_group:
        lines.append("WhatsApp group")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"session {escape(card.session_key)}"}],
        },
        {
            "type": "actions",
            "block_id": f"ticket_{card.ticket_id}",
            "elements": [
                _button("Accept", ACCEPT_ACTION, card.ticket_id, style="primary"),
                _button("Close", CLOSE_ACTION, card.ticket_id, style="danger"),
            ],
        },
    ]
    return {"text": card.headline, "blocks": blocks}


def _assignee(assignee: str) -> str:
    """A Slack user id becomes a mention; anything else (a Matrix id) stays text."""
    if re.fullmatch(r"[UW][A-Z0-9]{2,}", assignee):
        return f"<@{assignee}>"
    return escape(assignee)


def _button(label: str, action_id: str, ticket_id: int, *, style: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action_id,
        "value": str(ticket_id),
        "style": style,
    }


# --- who posts ----------------------------------------------------------------------


def author_args(author: Author) -> dict[str, str]:
    """``username`` / ``icon_url`` for chat.postMessage; the bot posts as itself."""
    if author.kind is AuthorKind.BOT:
        return {}
    name = author.name if author.kind is AuthorKind.CUSTOMER else _labelled(author)
    args = {"username": name[:USERNAME_LIMIT]}
    if author.avatar_url:
        args["icon_url"] = author.avatar_url
    return args


def _labelled(author: Author) -> str:
    label = NOTE_LABEL if author.kind is AuthorKind.NOTE else ATTENDANT_LABEL
    return f"{author.name} ({label})"


def note_text(text: str) -> str:
    """An internal note's mirror: an italic ``📝 Note`` line above its words
    (docs/tickets.md, "Internal notes")."""
    return f"{NOTE_LINE}\n{text}" if text else NOTE_LINE


# --- content ------------------------------------------------------------------------


def text_of(body: str) -> str:
    """WhatsApp markup → escaped Slack mrkdwn."""
    return formatting.whatsapp_to_slack(body)


def quoted(quote_text: str | None) -> str:
    """The line that introduces a reply: ``> quoted text`` (first lines, shortened)."""
    if not quote_text:
        return "> _(reply to an earlier message)_"
    lines = quote_text.strip().splitlines()[:3]
    short = [line if len(line) <= 200 else line[:199] + "…" for line in lines]
    return "\n".join(f"> {line}" for line in short) or "> _(reply to an earlier message)_"


def map_search_url(location: Location) -> str:
    query = quote_plus(f"{location.lat},{location.lon}")
    return f"https://www.google.com/maps/search/?api=1&query={query}"


def location_text(location: Location) -> str:
    """A map link with the place's name and address."""
    url = map_search_url(location)
    label = escape(location.name) if location.name else f"{location.lat}, {location.lon}"
    lines = [f"📍 <{url}|{label}>"]
    if location.address:
        lines.append(escape(location.address))
    if location.live:
        lines.append("_(live location)_")
    return "\n".join(lines)


def contact_text(card: ContactCard) -> str:
    """A readable contact: name, then every number with its label and every email
    (the .vcf file follows separately)."""
    shown = vcard.describe(card)
    organization = f" ({escape(shown.organization)})" if shown.organization else ""
    lines = [f"👤 *{escape(shown.name)}*{organization}"]
    lines += [f"📞 {escape(number)}" for number in shown.numbers]
    lines += [f"✉️ {escape(email)}" for email in shown.emails]
    if shown.problem:
        lines.append(f"_({escape(shown.problem)})_")
    return "\n".join(lines)


def vcard_filename(card: ContactCard) -> str:
    safe = re.sub(r"[^\w.-]+", "_", card.display_name).strip("_") or "contact"
    return f"{safe}.vcf"


def media_filename(media: Media, ident: str) -> str:
    """The file's own name, else one from its kind (``voice-<id>.ogg`` …: docs/messages.md,
    "File names")."""
    return media.filename or default_filename(media.media_kind, media.mimetype, ident)


def media_comment(media: Media, author: Author) -> str:
    """The upload's ``initial_comment``: the caption; without one, who sent what."""
    if author.kind is AuthorKind.NOTE:
        return note_text(text_of(media.caption) if media.caption else "")
    if media.caption:
        return text_of(media.caption)
    if author.kind is AuthorKind.BOT:
        return ""
    return f"_{escape(author.name)} sent {_kind_word(media.media_kind)}_"


def _kind_word(kind: MediaKind) -> str:
    return {
        MediaKind.IMAGE: "an image",
        MediaKind.VIDEO: "a video",
        MediaKind.AUDIO: "an audio file",
        MediaKind.VOICE: "a voice message",
        MediaKind.DOCUMENT: "a document",
        MediaKind.STICKER: "a sticker",
    }[kind]


def media_kind_of(mimetype: str, *, slack_subtype: str | None = None) -> MediaKind:
    """The WhatsApp kind a Slack file becomes (voice clips → voice notes)."""
    base = mimetype.split(";", 1)[0].strip().lower()
    if slack_subtype == "slack_audio":
        return MediaKind.VOICE
    if base == "image/webp":
        return MediaKind.STICKER
    if base.startswith("image/"):
        return MediaKind.IMAGE
    if base.startswith("video/"):
        return MediaKind.VIDEO
    if base.startswith("audio/"):
        return MediaKind.AUDIO
    return MediaKind.DOCUMENT


# --- mentions -----------------------------------------------------------------------

_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def mentioned_users(text: str) -> list[str]:
    """User ids mentioned as ``<@U…>`` in Slack text, in order, without repeats."""
    return list(dict.fromkeys(_MENTION.findall(text)))


# --- reactions ------------------------------------------------------------------------


def reaction_name(emoji: str) -> str | None:
    """Slack's name for ``emoji`` (``+1``; skin tones as ``+1::skin-tone-4``), else None
    (an emoji the data does not know, or one with two different skin tones)."""
    return SLACK_EMOJI.name(emoji)


def reaction_emoji(name: str) -> str | None:
    """The emoji of a Slack reaction name (skin tones kept), else None (custom emoji)."""
    return SLACK_EMOJI.emoji(name)
