"""Quick replies: ``!r <shortcut>`` sends a company's saved answer to the customer,
``!replies`` lists them (docs/commands.md; the config in
bridge/config/quick_replies.py).

The handler only finds the reply; the relay sends it exactly as it sends what an
attendant types (stored, signed, mirrored, the first response counted, refused
outside the Cloud API's 24-hour window), with the content built here.
"""

from __future__ import annotations

import asyncio
import difflib
import mimetypes
from pathlib import Path

from bridge.config import QuickReply
from bridge.core import command_texts as texts
from bridge.core.command_model import CommandReply, Invocation, Services, UsageError
from bridge.errors import BridgeError
from bridge.model import Media, MediaKind, Text

__all__ = ["fill", "quick_reply_content", "run_quick_reply", "run_replies"]


async def run_quick_reply(services: Services, call: Invocation) -> CommandReply:
    if len(call.args) != 1:
        raise call.usage_error()
    shortcut = call.args[0]
    reply = call.company.quick_reply(shortcut)
    if reply is None:
        known = [q.shortcut for q in call.company.quick_replies]
        close = difflib.get_close_matches(shortcut, known, n=2, cutoff=0.6)
        raise UsageError(texts.unknown_quick_reply(shortcut, suggestions=close))
    return CommandReply("", quick_reply=reply)


async def run_replies(services: Services, call: Invocation) -> CommandReply:
    if call.args:
        raise call.usage_error()
    replies = call.company.quick_replies
    if not replies:
        return CommandReply(texts.no_quick_replies(call.company.name))
    lines = [
        texts.quick_reply_line(
            q.shortcut, text=q.text, file_name=Path(q.file).name if q.file else None
        )
        for q in replies
    ]
    return CommandReply("\n".join(lines))


def fill(text: str, *, name: str, ticket: int, attendant: str) -> str:
    """``text`` with ``{name}``, ``{ticket}`` and ``{attendant}`` filled in; any other
    brace is left as written."""
    values = {"{name}": name, "{ticket}": str(ticket), "{attendant}": attendant}
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


async def quick_reply_content(
    reply: QuickReply, *, name: str, ticket: int, attendant: str
) -> Text | Media:
    """What ``reply`` sends: its filled text, or its file (read now) with that text as
    the caption. :class:`BridgeError` when the file cannot be read any more."""
    body = fill(reply.text, name=name, ticket=ticket, attendant=attendant)
    if reply.file is None:
        return Text(body)
    path = Path(reply.file)
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise BridgeError(f"cannot read the quick reply's file {path}: {exc.strerror}") from exc
    mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return Media(
        media_kind=_kind_of(mimetype),
        mimetype=mimetype,
        data=data,
        filename=path.name,
        caption=body,
        size=len(data),
    )


def _kind_of(mimetype: str) -> MediaKind:
    family = mimetype.split("/", 1)[0]
    kinds = {"image": MediaKind.IMAGE, "video": MediaKind.VIDEO, "audio": MediaKind.AUDIO}
    return kinds.get(family, MediaKind.DOCUMENT)
