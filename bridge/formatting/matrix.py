"""AST ⇄ Matrix HTML (the ``org.matrix.custom.html`` subset).

Output uses ``<strong> <em> <del> <code> <pre><code> <blockquote> <ul>/<ol>/<li>
<a href> <br>``; paragraphs are inline content separated by ``<br>`` (a blank line
between two paragraphs). User mentions are ``<a href="https://matrix.to/#/@u:s">``.

Input is parsed with the standard library's tolerant :mod:`html.parser`: unknown
tags are transparent, stray end tags ignored, unclosed tags closed at the end,
``<mx-reply>`` (the reply fallback), ``<script>``, ``<style>`` dropped. Whitespace
follows HTML: a run of whitespace containing a newline is one space, and whitespace
at the edges of a line is dropped (``<pre>`` keeps everything).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from urllib.parse import quote, unquote

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
    merge_text,
)

# Elements nested deeper than this are flattened to their text.
MAX_DEPTH = 48

_VOID = frozenset({"br", "img", "hr", "input", "meta", "link", "wbr", "col", "area", "source"})
_DROPPED = frozenset({"mx-reply", "script", "style", "head", "title", "template", "noscript"})
_BOLD = frozenset({"strong", "b"})
_ITALIC = frozenset({"em", "i"})
_STRIKE = frozenset({"del", "s", "strike"})
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_BLOCKS = frozenset(
    {"p", "div", "blockquote", "pre", "ul", "ol", "li", "hr", "table", "tr", "section"}
    | {"article", "header", "footer", "details", "summary", "dl", "dt", "dd", "caption"}
    | _HEADINGS
)
_SAFE_SCHEMES = ("http://", "https://", "mailto:", "tel:", "matrix:")
_MATRIX_TO = "https://matrix.to/#/"


# --- parsing: HTML → element tree ---------------------------------------------------------


@dataclass(slots=True)
class _Element:
    tag: str
    attrs: dict[str, str]
    children: list[_Element | str] = field(default_factory=list)


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = _Element("#root", {})
        self.stack: list[_Element] = [self.root]
        self._skipped = 0  # open elements not pushed because of MAX_DEPTH

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = _Element(tag, {name: value or "" for name, value in attrs})
        if tag in ("li", "p"):
            self._close_implied(tag)
        self.stack[-1].children.append(element)
        if tag in _VOID:
            return
        if len(self.stack) >= MAX_DEPTH:
            self._skipped += 1
            return
        self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return
        # a stray end tag (or one whose start was past MAX_DEPTH): ignored

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)

    def _close_implied(self, tag: str) -> None:
        """A new <li> closes the open <li> of the same list; a new <p> an open <p>."""
        scope = {"li": ("ul", "ol"), "p": ("div", "blockquote", "li", "td")}[tag]
        for depth in range(len(self.stack) - 1, 0, -1):
            current = self.stack[depth].tag
            if current == tag:
                del self.stack[depth:]
                return
            if current in scope:
                return


def _tree(markup: str) -> _Element:
    builder = _TreeBuilder()
    builder.feed(markup)
    builder.close()
    return builder.root


# --- parsing: element tree → AST --------------------------------------------------------


def parse_html(markup: str) -> Document:
    """Matrix HTML as a document. Never raises on junk; unknown markup becomes text."""
    return tuple(_blocks(_tree(markup).children))


def _blocks(children: list[_Element | str]) -> list[Block]:
    blocks: list[Block] = []
    inline: list[Inline] = []

    def flush() -> None:
        paragraph = _paragraph(inline)
        if paragraph is not None:
            blocks.append(paragraph)
        inline.clear()

    for child in children:
        if isinstance(child, str) or child.tag not in _BLOCKS:
            inline.extend(_inlines(child))
            continue
        flush()
        blocks.extend(_block(child))
    flush()
    return blocks


def _block(element: _Element) -> list[Block]:
    tag = element.tag
    if tag == "pre":
        text = _text_content(element)
        return [CodeBlock(text[:-1] if text.endswith("\n") else text)]
    if tag == "blockquote":
        return [Quote(tuple(_blocks(element.children)))]
    if tag in ("ul", "ol"):
        return [_list(element)]
    if tag == "li":
        return [ListBlock(False, (tuple(_blocks(element.children)),))]
    if tag == "hr":
        return [Paragraph((Text("---"),))]
    if tag in _HEADINGS:
        inner = _paragraph(_inlines_of(element.children))
        return [Paragraph((Bold(inner.children),))] if inner is not None else []
    return _blocks(element.children)


def _list(element: _Element) -> ListBlock:
    items: list[tuple[Block, ...]] = []
    for child in element.children:
        if isinstance(child, str):
            if child.strip():
                items.append((Paragraph((Text(child.strip()),)),))
        elif child.tag == "li":
            items.append(tuple(_blocks(child.children)))
        else:
            items.append(tuple(_blocks([child])))
    start = element.attrs.get("start", "1").strip()
    number = int(start) if start.isdigit() and len(start) < 10 else 1
    return ListBlock(element.tag == "ol", tuple(items), number)


_NEWLINE_SPACE = re.compile(r"[ \t]*[\r\n][ \t\r\n]*")


class _Soft:
    """Whitespace with a newline in the source HTML: one space, or nothing at a line edge.

    Only lives between :func:`_inlines` and :func:`_paragraph`.
    """


_SOFT = _Soft()


def _inlines(node: _Element | str) -> list[Inline]:
    if isinstance(node, str):
        return _soft_text(node)
    tag = node.tag
    if tag in _DROPPED:
        return []
    if tag == "br":
        return [LineBreak()]
    if tag == "img":
        return [Text(node.attrs.get("alt") or node.attrs.get("title") or "")]
    if tag == "code":
        return [Code(_text_content(node))]
    if tag == "a":
        return _anchor(node)
    children = tuple(_inlines_of(node.children))
    if tag in _BOLD:
        return [Bold(children)]
    if tag in _ITALIC:
        return [Italic(children)]
    if tag in _STRIKE:
        return [Strike(children)]
    if tag in _BLOCKS:  # a block inside inline markup: keep it on its own line
        return [LineBreak(), *children, LineBreak()]
    return list(children)


def _soft_text(text: str) -> list[Inline]:
    out: list[Inline] = []
    for index, part in enumerate(_NEWLINE_SPACE.split(text)):
        if index:
            out.append(_SOFT)  # type: ignore[arg-type]
        if part:
            out.append(Text(part))
    return out


def _inlines_of(children: list[_Element | str]) -> list[Inline]:
    out: list[Inline] = []
    for child in children:
        out.extend(_inlines(child))
    return out


def _anchor(element: _Element) -> list[Inline]:
    href = element.attrs.get("href", "").strip()
    children = merge_text(_inlines_of(element.children))
    user_id = _matrix_user(href)
    if user_id is not None:
        label = _text_content(element).strip()
        return [Mention(user_id, label or None)]
    if href.lower().startswith(_SAFE_SCHEMES):
        return [Link(href, children or (Text(href),))]
    return list(children)  # no target, or one we do not pass on (javascript:, data:)


def _matrix_user(href: str) -> str | None:
    """The Matrix user id a matrix.to or matrix: URI points at, if it points at a user."""
    if href.startswith(_MATRIX_TO):
        target = unquote(href[len(_MATRIX_TO) :].split("?", 1)[0])
    elif href.startswith("matrix:u/"):
        target = "@" + unquote(href[len("matrix:u/") :].split("?", 1)[0])
    else:
        return None
    if target.startswith("@") and ":" in target and "/" not in target:
        return target
    return None


def _text_content(element: _Element) -> str:
    """All text under ``element`` (``<br>`` as a newline), iteratively."""
    parts: list[str] = []
    pending: list[_Element | str] = [element]
    while pending:
        node = pending.pop()
        if isinstance(node, str):
            parts.append(node)
        elif node.tag == "br":
            parts.append("\n")
        elif node.tag not in _DROPPED:
            pending.extend(reversed(node.children))
    return "".join(parts)


def _paragraph(inline: list[Inline]) -> Paragraph | None:
    """Inline content as a paragraph, soft whitespace resolved; None if only whitespace."""
    lines: list[list[Inline | _Soft]] = [[]]
    for node in inline:
        if isinstance(node, LineBreak):
            lines.append([])
        else:
            lines[-1].append(node)
    children: list[Inline] = []
    for index, line in enumerate(lines):
        if index:
            children.append(LineBreak())
        children.extend(_resolve_soft(line))
    merged = merge_text(_unsoft(children))
    if merged == (LineBreak(),):
        return Paragraph(())  # a lone <br> between blocks is an empty line (see _render_block)
    if len(lines) == 1 and all(isinstance(n, Text) and not n.text.strip() for n in merged):
        return None
    return Paragraph(merged)


def _resolve_soft(line: list[Inline | _Soft]) -> list[Inline]:
    """Soft whitespace at the edges of a line dropped, elsewhere a single space."""
    while line and line[0] is _SOFT:
        line = line[1:]
    while line and line[-1] is _SOFT:
        line = line[:-1]
    out: list[Inline] = []
    for node in line:
        if isinstance(node, _Soft):
            if not (out and isinstance(out[-1], Text) and out[-1].text.endswith(" ")):
                out.append(Text(" "))
        else:
            out.append(node)
    return out


def _unsoft(nodes: list[Inline]) -> list[Inline]:
    """Soft whitespace nested in styled or linked content, as spaces."""
    out: list[Inline] = []
    for node in nodes:
        if isinstance(node, _Soft):
            out.append(Text(" "))
        elif isinstance(node, Bold | Italic | Strike | Link):
            out.append(replace(node, children=merge_text(_unsoft(list(node.children)))))
        else:
            out.append(node)
    return out


# --- rendering: AST → HTML --------------------------------------------------------------


def render_html(doc: Document) -> str:
    """A document as Matrix HTML, every text escaped."""
    parts: list[str] = []
    previous: Block | None = None
    for block in doc:
        if isinstance(previous, Paragraph) and isinstance(block, Paragraph):
            parts.append("<br><br>")
        parts.append(_render_block(block))
        previous = block
    return "".join(parts)


def _render_block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return render_inline_html(block.children) if block.children else "<br>"
    if isinstance(block, CodeBlock):
        # a final newline, as CommonMark writes it (and the parser strips)
        return f"<pre><code>{_escape(block.text)}\n</code></pre>"
    if isinstance(block, Quote):
        return f"<blockquote>{render_html(block.blocks)}</blockquote>"
    tag = "ol" if block.ordered else "ul"
    start = f' start="{block.start}"' if block.ordered and block.start != 1 else ""
    items = "".join(f"<li>{render_html(item)}</li>" for item in block.items)
    return f"<{tag}{start}>{items}</{tag}>"


_INLINE_TAGS: dict[type, str] = {Bold: "strong", Italic: "em", Strike: "del"}


def render_inline_html(nodes: tuple[Inline, ...]) -> str:
    parts: list[str] = []
    for node in nodes:
        if isinstance(node, Text):
            parts.append(_escape(node.text).replace("\n", "<br>"))
        elif isinstance(node, LineBreak):
            parts.append("<br>")
        elif isinstance(node, Code):
            parts.append(f"<code>{_escape(node.text)}</code>")
        elif isinstance(node, Mention):
            parts.append(_render_mention(node))
        elif isinstance(node, Link):
            href = html.escape(node.url, quote=True)
            parts.append(f'<a href="{href}">{render_inline_html(node.children)}</a>')
        else:
            tag = _INLINE_TAGS[type(node)]
            parts.append(f"<{tag}>{render_inline_html(node.children)}</{tag}>")
    return "".join(parts)


def _render_mention(mention: Mention) -> str:
    user_id = mention.user_id
    if user_id.startswith("@") and ":" in user_id:
        href = html.escape(_MATRIX_TO + quote(user_id, safe="@:"), quote=True)
        return f'<a href="{href}">{_escape(mention.label or user_id)}</a>'
    if mention.label:
        return _escape(mention.label)
    return _escape("@" + user_id.lstrip("+"))


def _escape(text: str) -> str:
    return html.escape(text, quote=False)
