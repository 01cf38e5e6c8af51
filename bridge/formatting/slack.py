"""AST ⇄ Slack mrkdwn.

mrkdwn shares WhatsApp's marker syntax (``*bold*``, ``_italic_``, ``~strike~``,
`` `code` ``, ```` ```block``` ````, ``>`` quotes), so parsing reuses the WhatsApp
family parser with Slack's atoms: ``<url|label>`` links, ``<@U0BOB>`` user mentions,
``<#C0|name>`` channels, ``<!here>``-style specials and the three entities ``&amp;``
``&lt;`` ``&gt;`` (https://api.slack.com/reference/surfaces/formatting).

On output ``&``, ``<`` and ``>`` in text are escaped, so text can never forge a link
or a mention; lists (which mrkdwn lacks) are ``•`` and ``1.`` lines.

Emoji (:mod:`bridge.formatting.slack_emoji`): a standard shortcode (``:tada:``,
``:+1::skin-tone-2:``) in Slack text is read as its emoji, except in code, inside
``<…>`` (links, mentions, channels) and right after a letter or digit; custom
workspace emoji stay ``:name:``. On output emoji stay Unicode (Slack shows them) and
a literal shortcode in text is protected (a word joiner after its first colon), so
Slack shows it as typed and reading it back gives the same text.
"""

from __future__ import annotations

import re

from bridge.formatting.ast import (
    Block,
    Bold,
    Code,
    CodeBlock,
    Document,
    Inline,
    Italic,
    LineBreak,
    Link,
    Mention,
    Paragraph,
    Quote,
    Strike,
    Text,
    inline_plain,
    join_blocks,
    prefix_lines,
    render_list,
)
from bridge.formatting.slack_emoji import emojize, protect
from bridge.formatting.whatsapp import Atom, Dialect, parse, wrap_lines

_ENTITIES = {"&amp;": "&", "&lt;": "<", "&gt;": ">"}
_ENTITY = re.compile(r"&(?:amp|lt|gt);")
_ANGLE = re.compile(r"<([^<>\n]*)>")
_SPECIALS = {"here": "@here", "channel": "@channel", "everyone": "@everyone"}


def unescape(text: str) -> str:
    """Slack's three entities decoded (``&amp;`` last, so ``&amp;lt;`` stays ``&lt;``)."""
    return _ENTITY.sub(lambda match: _ENTITIES[match.group()], text)


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _angle(inner: str) -> Inline:
    """The node for a ``<…>`` token."""
    target, _, label = inner.partition("|")
    label = unescape(label)
    if target.startswith("@"):
        return Mention(target[1:], label or None)
    if target.startswith("#"):
        return Text("#" + (label or target[1:]))
    if target.startswith("!"):
        name = target[1:].split("^", 1)[0]
        return Text(label or _SPECIALS.get(name, "@" + name))
    url = unescape(target)
    if ":" not in url:
        return Text(label or url)
    return Link(url, (Text(emojize(label) if label else url),))


def _slack_atoms(line: str) -> list[Atom]:
    """``<…>`` tokens, then the entities outside them."""
    atoms: list[Atom] = []
    if "<" in line:
        atoms.extend((m.start(), m.end(), _angle(m.group(1))) for m in _ANGLE.finditer(line))
    if "&" in line:
        inside = _covered(line, atoms)
        for match in _ENTITY.finditer(line):
            if not inside[match.start()]:
                atoms.append((match.start(), match.end(), Text(_ENTITIES[match.group()])))
        atoms.sort(key=lambda atom: atom[0])
    return atoms


def _covered(line: str, atoms: list[Atom]) -> bytearray:
    """1 at every position of ``line`` inside one of ``atoms``: one pass, however many."""
    inside = bytearray(len(line))
    for start, end, _ in atoms:
        inside[start:end] = b"\x01" * (end - start)
    return inside


def _text(raw: str) -> str:
    """Text between markers and atoms (never code, never inside ``<…>``): entities
    decoded, standard emoji shortcodes as emoji."""
    return emojize(unescape(raw))


SLACK = Dialect(
    find_atoms=_slack_atoms,
    literal=unescape,
    decode_text=_text,
    quote_prefixes=("&gt; ", "> "),
    bullets=("• ", "◦ ", "- ", "* "),
)


def parse_mrkdwn(text: str) -> Document:
    """Slack mrkdwn (as found in a message's ``text``) as a document."""
    return parse(text, SLACK)


# --- rendering --------------------------------------------------------------------------


def render_mrkdwn(doc: Document) -> str:
    """A document as Slack mrkdwn, text escaped.

    Mentions of Slack users (``U…``/``W…`` ids) become ``<@U…>``; any other mention is
    shown as text (its label, else ``@`` and its id).
    """
    return join_blocks(doc, _render_block)


def _render_block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return render_inline(block.children)
    if isinstance(block, CodeBlock):
        return "```" + escape(block.text) + "```"
    if isinstance(block, Quote):
        return prefix_lines(render_mrkdwn(block.blocks), "> ", "> ")
    return render_list(block, render_mrkdwn, bullet="• ")


def render_inline(nodes: tuple[Inline, ...], active: frozenset[str] = frozenset()) -> str:
    parts: list[str] = []
    for node in nodes:
        if isinstance(node, Text):
            parts.append(escape(protect(node.text)))
        elif isinstance(node, LineBreak):
            parts.append("\n")
        elif isinstance(node, Code):
            parts.append(_render_code(node.text))
        elif isinstance(node, Mention):
            parts.append(_render_mention(node))
        elif isinstance(node, Link):
            parts.append(_render_link(node))
        else:
            marker = {Bold: "*", Italic: "_", Strike: "~"}[type(node)]
            inner = render_inline(node.children, active | {marker})
            parts.append(inner if marker in active else wrap_lines(inner, marker))
    return "".join(parts)


def _render_code(text: str) -> str:
    if not text:
        return ""
    if "`" in text or "\n" in text or not text.strip() or text != text.strip():
        return "```" + escape(text) + "```"
    return "`" + escape(text) + "`"


def _render_mention(mention: Mention) -> str:
    user_id = mention.user_id
    if re.fullmatch(r"[UWB][A-Z0-9]+", user_id):
        return f"<@{user_id}>"
    return escape(mention.label or "@" + user_id)


def _render_link(link: Link) -> str:
    url = link.url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")
    url = url.replace("&", "&amp;")
    label = inline_plain(link.children).replace("\n", " ")
    if not label.strip() or label == link.url:
        return f"<{url}>"
    return f"<{url}|{escape(label)}>"
