"""WhatsApp markup ⇄ AST.

WhatsApp markup: ``*bold*``, ``_italic_``, ``~strike~``, ```` ```code``` ````
(a block when the fences start and end whole lines, otherwise inline), `` `inline` ``,
``> quote`` lines, ``- item`` / ``* item`` / ``1. item`` lists, mentions
``@5511987654321``, bare ``https://`` links.

Markers count only at word boundaries, as WhatsApp does: an opening marker follows
the start of the span or a non-alphanumeric character and precedes a non-space; a
closing marker follows a non-space and precedes the end or a non-alphanumeric
character. So ``2*3*4`` and ``snake_case_name`` stay literal, as do unbalanced
markers. Markup never spans lines.

The line/marker parser here is shared with Slack mrkdwn (same family of syntax):
a :class:`Dialect` supplies what differs (atoms such as links and entities, the
literal decoding of code, quote prefixes and bullets).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass

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
    ListBlock,
    Mention,
    Paragraph,
    Quote,
    Strike,
    Text,
    inline_plain,
    join_blocks,
    merge_text,
    prefix_lines,
    render_list,
)

# Nesting deeper than this (quotes in quotes, markers in markers) stays literal, so
# hostile input cannot exhaust the stack.
MAX_DEPTH = 16

_STYLES: dict[str, type[Bold | Italic | Strike]] = {"*": Bold, "_": Italic, "~": Strike}
_MARKERS = "*_~`"

Atom = tuple[int, int, Inline]  # start, end (exclusive), node
AtomFinder = Callable[[str], list[Atom]]


@dataclass(frozen=True, slots=True)
class Dialect:
    """What a markup of the WhatsApp family adds to the shared parser."""

    find_atoms: AtomFinder  # non-overlapping, sorted spans of a line that are nodes
    literal: Callable[[str], str]  # decodes the raw text of code and code blocks
    decode_text: Callable[[str], str]  # decodes the raw text between markers
    quote_prefixes: tuple[str, ...]  # "> " first: the prefixes that open a quote line
    bullets: tuple[str, ...]  # unordered list markers, with their trailing space


# --- atoms: links and mentions ----------------------------------------------------------

_URL = re.compile(r"(?<![\w/])https?://[^\s<>\"`]+", re.IGNORECASE)
_MENTION = re.compile(r"(?<![\w@])@(\d{5,15})(?![\w@])")
_URL_TRAILING = ".,;:!?'\"*_~`"


def trim_url(url: str) -> str:
    """``url`` without the trailing punctuation a sentence put after it."""
    while url:
        last = url[-1]
        if last in _URL_TRAILING or (last == ")" and url.count(")") > url.count("(")):
            url = url[:-1]
        else:
            break
    return url


def _whatsapp_atoms(line: str) -> list[Atom]:
    atoms: list[Atom] = []
    if "://" in line:
        for match in _URL.finditer(line):
            url = trim_url(match.group())
            if "://" in url and not url.endswith("://"):
                atoms.append((match.start(), match.start() + len(url), Link(url, (Text(url),))))
    if "@" in line:
        taken = [(start, end) for start, end, _ in atoms]
        for match in _MENTION.finditer(line):
            if not any(start <= match.start() < end for start, end in taken):
                atoms.append((match.start(), match.end(), Mention("+" + match.group(1))))
        atoms.sort(key=lambda atom: atom[0])
    return atoms


def _identity(text: str) -> str:
    return text


WHATSAPP = Dialect(
    find_atoms=_whatsapp_atoms,
    literal=_identity,
    decode_text=_identity,
    quote_prefixes=("> ",),
    bullets=("- ", "* "),
)


# --- inline parsing ---------------------------------------------------------------------


class _Line:
    """One line being parsed: its atoms and, per marker, where it may close."""

    def __init__(self, text: str, dialect: Dialect) -> None:
        self.text = text
        self.dialect = dialect
        self.atoms = {start: (end, node) for start, end, node in dialect.find_atoms(text)}
        covered = bytearray(len(text))
        # what a boundary check sees at an atom's edges: its shown text, not its markup
        self.shown: dict[int, str] = {}
        for start, (end, node) in self.atoms.items():
            covered[start:end] = b"\x01" * (end - start)
            shown = inline_plain((node,)) or " "
            self.shown[start], self.shown[end - 1] = shown[0], shown[-1]
        self.closers: dict[str, list[int]] = {m: [] for m in _MARKERS}
        for j, char in enumerate(text):
            if char in _MARKERS and not covered[j] and self._may_close(j):
                self.closers[char].append(j)
        self.fences = [j for j in range(len(text)) if text.startswith("```", j)]

    def char(self, j: int) -> str:
        return self.shown.get(j, self.text[j])

    def _may_close(self, j: int) -> bool:
        return (
            j > 0
            and not self.char(j - 1).isspace()
            and (j + 1 == len(self.text) or _boundary(self.char(j + 1)))
        )

    def may_open(self, i: int, lo: int) -> bool:
        return (
            (i == lo or _boundary(self.char(i - 1)))
            and i + 1 < len(self.text)
            and not self.char(i + 1).isspace()
        )

    def closer(self, marker: str, after: int, hi: int) -> int | None:
        """The first position in (after, hi) where ``marker`` may close."""
        positions = self.closers[marker]
        k = bisect.bisect_right(positions, after)
        if k < len(positions) and positions[k] < hi:
            return positions[k]
        return None

    def fence(self, after: int, hi: int) -> int | None:
        k = bisect.bisect_right(self.fences, after)
        if k < len(self.fences) and self.fences[k] + 3 <= hi:
            return self.fences[k]
        return None


def _boundary(char: str) -> bool:
    return not char.isalnum()


def parse_inline(text: str, dialect: Dialect = WHATSAPP) -> tuple[Inline, ...]:
    """One line of markup as inline nodes."""
    line = _Line(text, dialect)
    return _inline(line, 0, len(text), 0)


def _inline(line: _Line, lo: int, hi: int, depth: int) -> tuple[Inline, ...]:
    text = line.text
    out: list[Inline] = []
    plain_from = lo
    i = lo

    def flush(upto: int) -> None:
        if upto > plain_from:
            out.append(Text(line.dialect.decode_text(text[plain_from:upto])))

    while i < hi:
        atom = line.atoms.get(i)
        if atom is not None and atom[0] <= hi:
            flush(i)
            out.append(atom[1])
            i = plain_from = atom[0]
            continue
        parsed = _marked(line, i, lo, hi, depth) if text[i] in _MARKERS else None
        if parsed is None:
            i += 1
            continue
        node, end = parsed
        flush(i)
        out.append(node)
        i = plain_from = end
    flush(hi)
    return merge_text(out)


def _marked(line: _Line, i: int, lo: int, hi: int, depth: int) -> tuple[Inline, int] | None:
    """The marked span opening at ``i`` and where it ends, or None if it does not open."""
    text = line.text
    marker = text[i]
    if marker == "`" and text.startswith("``", i):
        if text.startswith("```", i) and (i == lo or _boundary(line.char(i - 1))):
            close = line.fence(i + 3, hi)
            if (
                close is not None
                and close > i + 3
                and (close + 3 == hi or _boundary(line.char(close + 3)))
            ):
                return Code(line.dialect.literal(text[i + 3 : close])), close + 3
        run = len(text[i:hi]) - len(text[i:hi].lstrip("`"))
        return Text("`" * run), i + run
    if depth >= MAX_DEPTH or not line.may_open(i, lo):
        return None
    close = line.closer(marker, i + 1, hi)
    if close is None:
        return None
    if marker == "`":
        if "`" in text[i + 1 : close]:
            return None  # an inline span holds no backtick: "`a`b```" stays text
        return Code(line.dialect.literal(text[i + 1 : close])), close + 1
    children = _inline(line, i + 1, close, depth + 1)
    return _STYLES[marker](children), close + 1


# --- block parsing ----------------------------------------------------------------------

_ORDERED = re.compile(r"(\d{1,9})\. ")


def parse(text: str, dialect: Dialect = WHATSAPP) -> Document:
    """WhatsApp markup (or another dialect of the family) as a document."""
    return _blocks(text.split("\n"), dialect, 0)


def _blocks(lines: list[str], dialect: Dialect, depth: int) -> Document:
    fence_ends = [k for k, line in enumerate(lines) if line.endswith("```")]
    blocks: list[Block] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            blocks.append(_paragraph(paragraph, dialect))
            paragraph.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        code_end = _code_block_end(lines, i, fence_ends)
        if code_end is not None:
            flush()
            raw = "\n".join(lines[i : code_end + 1])[3:-3]
            blocks.append(CodeBlock(dialect.literal(raw)))
            i = code_end + 1
            continue
        if depth < MAX_DEPTH and _quote_body(line, dialect) is not None:
            flush()
            quoted: list[str] = []
            while i < len(lines):
                body = _quote_body(lines[i], dialect)
                if body is None:
                    break
                quoted.append(body)
                i += 1
            blocks.append(Quote(_blocks(quoted, dialect, depth + 1)))
            continue
        if _list_item(line, dialect) is not None:
            flush()
            list_block, i = _list(lines, i, dialect)
            blocks.append(list_block)
            continue
        paragraph.append(line)
        i += 1
    flush()
    return tuple(blocks)


def _code_block_end(lines: list[str], i: int, fence_ends: list[int]) -> int | None:
    """The line closing a code block that opens on line ``i``, if one does."""
    if not lines[i].startswith("```"):
        return None
    k = bisect.bisect_left(fence_ends, i)
    if k < len(fence_ends) and fence_ends[k] == i and len(lines[i]) < 7:
        k += 1  # "```" alone (or "``````") opens but cannot also close
    if k >= len(fence_ends):
        return None
    return fence_ends[k]


def _quote_body(line: str, dialect: Dialect) -> str | None:
    for prefix in dialect.quote_prefixes:
        if line.startswith(prefix):
            return line[len(prefix) :]
    return None


def _list_item(line: str, dialect: Dialect) -> tuple[bool, int, str] | None:
    """(ordered, number, content) when ``line`` is a list item."""
    for bullet in dialect.bullets:
        if line.startswith(bullet):
            return False, 1, line[len(bullet) :]
    match = _ORDERED.match(line)
    if match:
        return True, int(match.group(1)), line[match.end() :]
    return None


def _list(lines: list[str], i: int, dialect: Dialect) -> tuple[ListBlock, int]:
    first = _list_item(lines[i], dialect)
    assert first is not None
    ordered, start, _ = first
    items: list[tuple[Block, ...]] = []
    while i < len(lines):
        item = _list_item(lines[i], dialect)
        if item is None or item[0] != ordered:
            break
        items.append((Paragraph(parse_inline(item[2], dialect)),))
        i += 1
    return ListBlock(ordered, tuple(items), start), i


def _paragraph(lines: list[str], dialect: Dialect) -> Paragraph:
    children: list[Inline] = []
    for index, line in enumerate(lines):
        if index:
            children.append(LineBreak())
        children.extend(parse_inline(line, dialect))
    return Paragraph(tuple(children))


# --- rendering --------------------------------------------------------------------------


def render(doc: Document) -> str:
    """A document as WhatsApp markup.

    Mentions of phones (``+5511…``) become ``@5511…``; any other mention is shown as
    its label. WhatsApp has no escaping, so literal markers in text stay as they are.
    """
    return join_blocks(doc, _render_block)


def _render_block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return render_inline(block.children)
    if isinstance(block, CodeBlock):
        return "```" + block.text + "```"
    if isinstance(block, Quote):
        return prefix_lines(render(block.blocks), "> ", "> ")
    return render_list(block, render)


def render_inline(nodes: tuple[Inline, ...], active: frozenset[str] = frozenset()) -> str:
    parts: list[str] = []
    for node in nodes:
        if isinstance(node, Text):
            parts.append(node.text)
        elif isinstance(node, LineBreak):
            parts.append("\n")
        elif isinstance(node, Code):
            parts.append(_render_code(node.text))
        elif isinstance(node, Mention):
            parts.append(_render_mention(node))
        elif isinstance(node, Link):
            parts.append(_render_link(node, active))
        else:
            marker = {Bold: "*", Italic: "_", Strike: "~"}[type(node)]
            inner = render_inline(node.children, active | {marker})
            parts.append(inner if marker in active else wrap_lines(inner, marker))
    return "".join(parts)


def wrap_lines(text: str, marker: str, closing: str | None = None) -> str:
    """``text`` between markers, line by line, with edge whitespace kept outside."""
    closing = marker if closing is None else closing
    out: list[str] = []
    for line in text.split("\n"):
        core = line.strip()
        if not core:
            out.append(line)
            continue
        lead = line[: len(line) - len(line.lstrip())]
        trail = line[len(line.rstrip()) :]
        out.append(f"{lead}{marker}{core}{closing}{trail}")
    return "\n".join(out)


def _render_code(text: str) -> str:
    if not text:
        return ""
    if "`" in text or "\n" in text or not text.strip() or text != text.strip():
        return "```" + text + "```"
    return "`" + text + "`"


def _render_mention(mention: Mention) -> str:
    user_id = mention.user_id
    if user_id.startswith("+") and user_id[1:].isdigit():
        return "@" + user_id[1:]
    return mention.label or user_id


def _render_link(link: Link, active: frozenset[str]) -> str:
    label = render_inline(link.children, active)
    if not label.strip() or label == link.url:
        return link.url
    if _bare(label) == _bare(link.url):
        return label
    return f"{label} ({link.url})"


def _bare(url: str) -> str:
    for scheme in ("https://", "http://", "mailto:"):
        if url.startswith(scheme):
            return url[len(scheme) :].rstrip("/")
    return url.rstrip("/")
