"""A company's ``quick_replies``: saved answers sent with ``!r <shortcut>``
(docs/configuration.md, docs/commands.md).

Shortcuts are unique within a company, whatever their case. A reply's ``file`` is
a path relative to the config file's directory; it must exist, be a regular file
and fit ``media.max_size_mb`` when the config is read. It is read again each time
the reply is sent, so a file replaced on disk is sent as it is then.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bridge.config.fields import read_fields
from bridge.config.mapping import MappingReader
from bridge.config.problems import Seen
from bridge.config.schema import MediaConfig, QuickReply


def read_quick_replies(company: MappingReader, *, media: MediaConfig) -> tuple[QuickReply, ...]:
    replies = []
    shortcuts = Seen()
    for raw, path, line in company.items("quick_replies"):
        m = MappingReader(company.ctx, raw, path=path, line=line, label=company.label)
        values = read_fields(m, QuickReply).values
        shortcut, text = values["shortcut"], values["text"]
        if shortcut is None or text is None:
            continue  # reported
        earlier = shortcuts.claim(shortcut.casefold(), f"{path} (line {m.line_of('shortcut')})")
        if earlier:
            m.error("shortcut", f"shortcut '{shortcut}' is already used by {earlier}")
            continue
        reply = QuickReply(**values)
        if reply.file is not None:
            checked = _checked_file(m, reply.file, media=media)
            if checked is None:
                continue  # reported
            reply = replace(reply, file=str(checked))
        replies.append(reply)
    return tuple(replies)


def _checked_file(m: MappingReader, file: str, *, media: MediaConfig) -> Path | None:
    """``file`` made absolute, or None once its problem is reported."""
    path = Path(file) if Path(file).is_absolute() else m.ctx.base_dir / file
    try:
        if not path.is_file():
            m.error("file", f"{path} is not a file")
            return None
        size = path.stat().st_size
    except OSError as exc:
        m.error("file", f"cannot read {path}: {exc.strerror}")
        return None
    if size > media.max_size_bytes:
        m.error(
            "file",
            f"{path} has {size} bytes, more than media.max_size_mb ({media.max_size_mb} MB)",
        )
        return None
    return path
