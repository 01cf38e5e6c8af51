"""Internal notes: what attendants write in a ticket thread for each other only
(docs/tickets.md, "Internal notes").

A thread message is a note when its text (a file's caption) starts with
``tickets.note_prefix`` (default ``//``) or is ``!note <text>``. Spaces before the
prefix (or ``!note``) and WhatsApp formatting marks around it (``*//x*``,
``_ // x_``, ``> //x``, ``*!note x*``) do not hide it: a message that looks like a
note to the person typing it is one.
A note is stored with the message kind :data:`NOTE_KIND`, and so is every reaction,
edit or deletion of a note; :attr:`~bridge.db.messages.MessageRow.is_note` is the test every path to
WhatsApp refuses, and the one a transcript uses to mark notes.
"""

from __future__ import annotations

from dataclasses import replace

from bridge.core.commands import note_command_text
from bridge.model import AnyContent, Edit, Media, Text

NOTE_EMPTY = "An empty note: nothing was recorded. Write the note after the prefix."
NOTE_TOO_LATE = (
    "⚠️ This message was already sent to the customer: notes cannot be taken back. "
    "Your edit was not sent to WhatsApp (nor mirrored); write a new note instead."
)
"""The answer, in the thread, to an edit that turns a sent message into a note."""

_MARKS_AND_SPACES = "*_~`> \t\r\n"  # what may come before the prefix (WhatsApp markup)


def note_of(content: AnyContent, *, prefix: str) -> Text | Media | None:
    """What is left to show when ``content`` is a note (the prefix or ``!note``
    removed, formatting marks kept); None when it is not one. A text that is only
    the prefix (and marks) is an empty note (``Text("")``)."""
    if isinstance(content, Text):
        body = note_body(content.body, prefix=prefix)
        return None if body is None else replace(content, body=body)
    if isinstance(content, Media) and content.caption is not None:
        caption = note_body(content.caption, prefix=prefix)
        if caption is None:
            return None
        return replace(content, caption=caption or None)
    return None


def action_on_note(action: AnyContent, *, prefix: str) -> AnyContent:
    """A reaction, edit or deletion of a note as stored: an edit's new text without the
    prefix, if it repeats it (an edited note stays a note either way)."""
    if isinstance(action, Edit):
        new = note_of(action.new, prefix=prefix)
        return replace(action, new=new) if isinstance(new, Text) else action
    return action


def note_body(text: str, *, prefix: str) -> str | None:
    """``"  *// call back*"`` → ``"*call back*"``, ``"!note call back"`` → ``"call back"``
    (``!note`` may hide in formatting as the prefix may); None when ``text`` is not a
    note."""
    lead = len(text) - len(text.lstrip(_MARKS_AND_SPACES))
    marks, rest = "".join(ch for ch in text[:lead] if not ch.isspace()), text[lead:]
    after_command = note_command_text(rest)
    if after_command is not None:
        rest = after_command
    elif rest.startswith(prefix):
        rest = rest[len(prefix) :].lstrip()
    else:
        return None
    body = f"{marks}{rest}".strip()
    return body if body.strip(_MARKS_AND_SPACES) else ""  # marks alone say nothing
