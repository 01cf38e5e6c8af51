"""Message formatting between WhatsApp, Matrix and Slack: pure functions.

Every conversion goes through one small AST (:mod:`bridge.formatting.ast`):
``parse`` one markup, translate mentions with the caller's resolver, ``render``
the other. Nothing here does I/O; resolvers are plain callables.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bridge.formatting import matrix, slack, whatsapp
from bridge.formatting.ast import (
    Inline,
    Mention,
    Text,
    has_formatting,
    map_mentions,
    to_plain,
)

__all__ = [
    "matrix_to_whatsapp",
    "plain_text",
    "slack_to_whatsapp",
    "whatsapp_to_matrix",
    "whatsapp_to_slack",
]


def _no_matrix_user(phone: str) -> tuple[str, str] | None:
    return None


def _no_name(user_id: str) -> str | None:
    return None


def whatsapp_to_matrix(
    body: str,
    *,
    mention_resolver: Callable[[str], tuple[str, str] | None] = _no_matrix_user,
) -> tuple[str, str | None]:
    """WhatsApp markup → (plain body, Matrix HTML or None when there is no formatting).

    ``mention_resolver(E.164 phone)`` gives ``(matrix user id, display name)`` for a
    mentioned phone, or None to leave ``@5511…`` as text. Bare links alone do not
    count as formatting (clients linkify the body).
    """

    def to_matrix(mention: Mention) -> Inline:
        resolved = mention_resolver(mention.user_id)
        if resolved is None:
            return Text("@" + mention.user_id.lstrip("+"))
        user_id, name = resolved
        return Mention(user_id, name)

    doc = map_mentions(whatsapp.parse(body), to_matrix)
    if not has_formatting(doc):
        return body, None
    return to_plain(doc), matrix.render_html(doc)


def matrix_to_whatsapp(
    body: str,
    formatted_body: str | None,
    *,
    mention_resolver: Callable[[str], str | None] = _no_name,
) -> str:
    """A Matrix message → WhatsApp markup; ``formatted_body`` (HTML) wins when present.

    ``mention_resolver(matrix user id)`` gives an E.164 phone (``+5511…``, rendered
    ``@5511…`` so WhatsApp mentions it), a display name (rendered ``@Name``), or None
    (the pill's text is kept).
    """
    if not formatted_body:
        return strip_reply_fallback(body)

    def to_whatsapp(mention: Mention) -> Inline:
        resolved = mention_resolver(mention.user_id)
        if resolved is None:
            return Text(mention.label or mention.user_id)
        if resolved.startswith("+"):
            return Mention(resolved)
        return Text("@" + resolved)

    doc = map_mentions(matrix.parse_html(formatted_body), to_whatsapp)
    text = whatsapp.render(doc)
    return text if text.strip() else strip_reply_fallback(body)


_FALLBACK_HEAD = re.compile(r"> <[^>\n]+> ")


def strip_reply_fallback(body: str) -> str:
    """``body`` without a leading Matrix reply fallback (``> <@u:s> …`` lines + blank)."""
    if not _FALLBACK_HEAD.match(body):
        return body
    lines = body.split("\n")
    index = 0
    while index < len(lines) and lines[index].startswith(">"):
        index += 1
    if index < len(lines) and lines[index] == "":
        return "\n".join(lines[index + 1 :])
    return body


def whatsapp_to_slack(
    body: str, *, mention_resolver: Callable[[str], str | None] = _no_name
) -> str:
    """WhatsApp markup → Slack mrkdwn (escaped).

    ``mention_resolver(E.164 phone)`` gives a Slack user id (rendered ``<@U…>``), or
    None (rendered ``@+5511…`` as text).
    """

    def to_slack(mention: Mention) -> Inline:
        resolved = mention_resolver(mention.user_id)
        return Mention(resolved) if resolved else Text("@" + mention.user_id)

    return slack.render_mrkdwn(map_mentions(whatsapp.parse(body), to_slack))


def slack_to_whatsapp(text: str, *, user_resolver: Callable[[str], str | None] = _no_name) -> str:
    """Slack mrkdwn → WhatsApp markup, entities decoded.

    ``<@U0BOB>`` becomes ``@Bob`` (``user_resolver`` gives the name; None keeps
    ``@U0BOB``); ``<url|label>`` becomes ``label (url)``, or the url when they match.
    """

    def to_whatsapp(mention: Mention) -> Inline:
        name = user_resolver(mention.user_id)
        return Text("@" + (name or mention.user_id))

    return whatsapp.render(map_mentions(slack.parse_mrkdwn(text), to_whatsapp))


def plain_text(body: str) -> str:
    """WhatsApp markup stripped to plain text (previews, notifications)."""
    return to_plain(whatsapp.parse(body))
