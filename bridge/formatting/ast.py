"""The one small formatting AST every markup converts to and from.

A message is a :data:`Document`: a tuple of blocks. Blocks are :class:`Paragraph`
(inline content, lines separated by :class:`LineBreak`), :class:`CodeBlock`,
:class:`Quote` and :class:`ListBlock`. Consecutive blocks are separate lines; blank
lines are ``LineBreak`` nodes inside a paragraph, so WhatsApp text survives a trip
through the AST unchanged.

Inline nodes: :class:`Text`, :class:`Bold`, :class:`Italic`, :class:`Strike`,
:class:`Code`, :class:`Link`, :class:`Mention` and :class:`LineBreak`.

A :class:`Mention` names a user in the namespace of the platform it came from: an
E.164 phone (``+5511987654321``) from WhatsApp, a Matrix user id
(``@bob:example.org``) from Matrix, a Slack user id (``U0BOB``) from Slack. Use
:func:`map_mentions` to translate mentions to another platform before rendering.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Bold:
    children: tuple[Inline, ...]


@dataclass(frozen=True, slots=True)
class Italic:
    children: tuple[Inline, ...]


@dataclass(frozen=True, slots=True)
class Strike:
    children: tuple[Inline, ...]


@dataclass(frozen=True, slots=True)
class Code:
    """Inline code (monospace); its text is literal."""

    text: str


@dataclass(frozen=True, slots=True)
class Link:
    url: str
    children: tuple[Inline, ...]


@dataclass(frozen=True, slots=True)
class Mention:
    """A user mention; ``user_id`` is in the source platform's namespace (see module doc).

    ``label`` is what the source showed (a display name), when it showed one.
    """

    user_id: str
    label: str | None = None


@dataclass(frozen=True, slots=True)
class LineBreak:
    pass


Inline = Text | Bold | Italic | Strike | Code | Link | Mention | LineBreak
Styled = Bold | Italic | Strike


@dataclass(frozen=True, slots=True)
class Paragraph:
    children: tuple[Inline, ...]


@dataclass(frozen=True, slots=True)
class CodeBlock:
    """A multi-line code block; its text is literal."""

    text: str


@dataclass(frozen=True, slots=True)
class Quote:
    blocks: tuple[Block, ...]


@dataclass(frozen=True, slots=True)
class ListBlock:
    """A list; each item is a tuple of blocks. ``start`` numbers an ordered list."""

    ordered: bool
    items: tuple[tuple[Block, ...], ...]
    start: int = 1


Block = Paragraph | CodeBlock | Quote | ListBlock
Document = tuple[Block, ...]


def join_blocks(doc: Document, render_block: Callable[[Block], str]) -> str:
    """Blocks rendered one after another, for the line-oriented markups (WhatsApp,
    Slack): a blank line between two paragraphs, a line break otherwise."""
    parts: list[str] = []
    previous: Block | None = None
    for block in doc:
        if previous is not None:
            both_paragraphs = isinstance(previous, Paragraph) and isinstance(block, Paragraph)
            parts.append("\n\n" if both_paragraphs else "\n")
        parts.append(render_block(block))
        previous = block
    return "".join(parts)


# --- building helpers -----------------------------------------------------------------


def merge_text(nodes: list[Inline] | tuple[Inline, ...]) -> tuple[Inline, ...]:
    """Adjacent :class:`Text` nodes merged, empty ones dropped."""
    out: list[Inline] = []
    for node in nodes:
        if isinstance(node, Text):
            if not node.text:
                continue
            if out and isinstance(out[-1], Text):
                out[-1] = Text(out[-1].text + node.text)
                continue
        out.append(node)
    return tuple(out)


# --- queries and transforms -----------------------------------------------------------


def has_formatting(doc: Document) -> bool:
    """True when ``doc`` holds anything beyond plain text, line breaks and bare links."""
    for block in doc:
        if not isinstance(block, Paragraph):
            return True
        if any(not _is_plain(node) for node in block.children):
            return True
    return False


def _is_plain(node: Inline) -> bool:
    if isinstance(node, Link):
        return node.children == (Text(node.url),)
    return isinstance(node, Text | LineBreak)


def map_mentions(doc: Document, convert: Callable[[Mention], Inline]) -> Document:
    """``doc`` with every mention replaced by ``convert(mention)``."""
    return tuple(_map_block(block, convert) for block in doc)


def _map_block(block: Block, convert: Callable[[Mention], Inline]) -> Block:
    if isinstance(block, Paragraph):
        return Paragraph(_map_inlines(block.children, convert))
    if isinstance(block, Quote):
        return Quote(map_mentions(block.blocks, convert))
    if isinstance(block, ListBlock):
        return replace(block, items=tuple(map_mentions(item, convert) for item in block.items))
    return block


def _map_inlines(
    nodes: tuple[Inline, ...], convert: Callable[[Mention], Inline]
) -> tuple[Inline, ...]:
    out: list[Inline] = []
    for node in nodes:
        if isinstance(node, Mention):
            out.append(convert(node))
        elif isinstance(node, Bold | Italic | Strike | Link):
            out.append(replace(node, children=_map_inlines(node.children, convert)))
        else:
            out.append(node)
    return merge_text(out)


def mentions(doc: Document) -> list[Mention]:
    """Every mention in ``doc``, in order (for Matrix ``m.mentions``, Slack notifications)."""
    found: list[Mention] = []

    def collect(mention: Mention) -> Inline:
        found.append(mention)
        return mention

    map_mentions(doc, collect)
    return found


# --- plain text -----------------------------------------------------------------------


def inline_plain(nodes: tuple[Inline, ...]) -> str:
    """Inline content as plain text: markers dropped, links as their label (or url)."""
    parts: list[str] = []
    for node in nodes:
        if isinstance(node, Text):
            parts.append(node.text)
        elif isinstance(node, Code):
            parts.append(node.text)
        elif isinstance(node, LineBreak):
            parts.append("\n")
        elif isinstance(node, Mention):
            parts.append(node.label if node.label else "@" + node.user_id.lstrip("+@"))
        elif isinstance(node, Link):
            label = inline_plain(node.children)
            parts.append(label if label and label != node.url else node.url)
            if label and label != node.url and not _same_target(label, node.url):
                parts.append(f" ({node.url})")
        else:
            parts.append(inline_plain(node.children))
    return "".join(parts)


def _same_target(label: str, url: str) -> bool:
    """``label`` is ``url`` written without its scheme (``example.org`` for ``https://…``)."""
    for scheme in ("https://", "http://", "mailto:"):
        if url.startswith(scheme) and url[len(scheme) :].rstrip("/") == label.rstrip("/"):
            return True
    return False


def to_plain(doc: Document) -> str:
    """``doc`` as plain text: markers dropped, quotes as ``> ``, lists as ``- ``/``1. ``."""
    return "\n".join(_block_plain(block) for block in doc)


def _block_plain(block: Block) -> str:
    if isinstance(block, Paragraph):
        return inline_plain(block.children)
    if isinstance(block, CodeBlock):
        return block.text
    if isinstance(block, Quote):
        return prefix_lines(to_plain(block.blocks), "> ", ">")
    return render_list(block, to_plain)


def prefix_lines(text: str, prefix: str, blank_prefix: str) -> str:
    """Every line of ``text`` prefixed (``blank_prefix`` for empty lines)."""
    return "\n".join(prefix + line if line else blank_prefix for line in text.split("\n"))


def render_list(block: ListBlock, render: Callable[[Document], str], bullet: str = "- ") -> str:
    """A list as text: ``bullet``/``N. `` before each item, continuation lines indented."""
    lines: list[str] = []
    for index, item in enumerate(block.items):
        marker = f"{block.start + index}. " if block.ordered else bullet
        body = render(item).split("\n")
        lines.append(marker + body[0])
        lines.extend("   " + line if line else "" for line in body[1:])
    return "\n".join(lines)
