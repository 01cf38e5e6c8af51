"""A journal's records on disk, in order: append, read back, consume.

A journal is a private directory (0700) of segment files (0600) named by the
sequence number of their first record (``00000000000000000001.jnl``), plus a
``consumed`` file holding the sequence number of the last record replayed. A record
is one line of ASCII (JSON escapes every other character, so no raw newline can
occur inside it)::

    zj1 <seq> <crc32 of "<seq> <body>", 8 hex digits> <body: a JSON object>\\n

``zj1`` is the format's version. :meth:`JournalStore.append` writes its lines,
flushes and fsyncs them before it returns (a new segment's directory entry is
fsynced too), so a record it accepted survives a crash or a power cut.

Damage never raises. At :meth:`JournalStore.open`, whatever follows the last good
line of the last segment is a write torn by a crash: it is cut off with a warning
(the next append starts on a clean line). A bad line anywhere else is skipped with
an error. A failed append (disk full) is cut off at once; if even that fails, the
segment is closed for appends and the rest of the run reads only up to where the
good lines ended.

Consuming: :meth:`JournalStore.consume` records (atomically, in ``consumed``) that
every record up to a sequence number was replayed, and deletes the segments holding
only such records; once nothing is left, the last segment goes too. Sequence numbers
never go back: after a restart they continue after both the last record and
``consumed``.

Blocking I/O, and not thread-safe: one thread at a time (``bridge.journal.Journal``
runs every call on one worker thread of its own).
"""

from __future__ import annotations

import json
import logging
import os
import re
import zlib
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from bridge import files

log = logging.getLogger("bridge.journal")

MAGIC = b"zj1"
SEGMENT_BYTES = 8 * 1024 * 1024  # a new segment once the last one holds this much
CONSUMED_FILE = "consumed"
_SEGMENT_NAME = re.compile(r"(\d{20})\.jnl")


def dump_body(body: dict[str, Any]) -> bytes:
    """``body`` as a record's JSON: ASCII, compact; ``ValueError``/``TypeError`` when
    it is not plain JSON (NaN included)."""
    text = json.dumps(body, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.encode("ascii")


def record_line(seq: int, payload: bytes) -> bytes:
    """One record's line, newline included."""
    signed = b"%d %s" % (seq, payload)
    return b"%s %d %08x %s\n" % (MAGIC, seq, zlib.crc32(signed), payload)


def parse_line(line: bytes) -> tuple[int, dict[str, Any]] | None:
    """(seq, body) of a good line; None for anything else (torn, damaged, another format)."""
    if not line.endswith(b"\n"):
        return None
    parts = line[:-1].split(b" ", 3)
    if len(parts) != 4 or parts[0] != MAGIC or len(parts[2]) != 8:
        return None
    seq_text, crc_text, payload = parts[1], parts[2], parts[3]
    if not seq_text.isdigit() or len(seq_text) > 20:
        return None
    try:
        crc = int(crc_text, 16)
    except ValueError:
        return None
    if zlib.crc32(seq_text + b" " + payload) != crc:
        return None
    try:
        body = json.loads(payload)
    except ValueError:  # a checksum collision on damaged bytes: still not ours
        return None
    return (int(seq_text), body) if isinstance(body, dict) else None


@dataclass(frozen=True, slots=True)
class Record:
    seq: int
    body: dict[str, Any]
    size: int  # bytes of its line


@dataclass(frozen=True)
class Opened:
    """What :meth:`JournalStore.open` found."""

    pending: int  # records not yet replayed
    pending_bytes: int
    torn: int  # bytes cut off the end of the last segment
    damaged: int  # bad lines skipped elsewhere


@dataclass
class _Segment:
    first_seq: int
    path: Path
    size: int  # bytes of good content: appends go after it, reads stop at it
    last_seq: int  # the last record's seq (first_seq - 1 when it has none)
    sealed: bool = False  # no more appends (an append failed and could not be cut off)


class JournalStore:
    """The records of one journal directory; see the module docstring."""

    def __init__(self, directory: Path, *, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self._segment_bytes = segment_bytes
        self._segments: list[_Segment] = []
        self._consumed = 0
        self._next_seq = 1
        self._pending = 0
        self._pending_bytes = 0
        self._handed: deque[Record] = deque()  # read, not yet consumed
        self._cursor: tuple[int, int] | None = None  # (segment first_seq, offset) to read next
        self._fd: int | None = None  # the last segment, open for appends
        self._reader: tuple[Path, BinaryIO] | None = None

    # --- counts -------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Records appended and not yet consumed."""
        return self._pending

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    @property
    def next_seq(self) -> int:
        """The sequence number the next record appended gets."""
        return self._next_seq

    # --- opening ------------------------------------------------------------------

    def open(self) -> Opened:
        """Create the directory if missing; find the pending records; cut a torn tail."""
        files.private_dir(self.directory)
        self._consumed = self._read_consumed()
        torn = damaged = 0
        paths = self._segment_paths()
        last_seq = self._consumed
        for index, (first_seq, path) in enumerate(paths):
            segment, seg_torn, seg_damaged = self._scan(
                first_seq, path, last=index == len(paths) - 1
            )
            self._segments.append(segment)
            torn += seg_torn
            damaged += seg_damaged
            last_seq = max(last_seq, segment.last_seq)
        self._next_seq = last_seq + 1
        self._drop_consumed_segments(keep_last=True)
        if self._cursor is None and self._segments:
            self._cursor = (self._segments[0].first_seq, 0)
        return Opened(self._pending, self._pending_bytes, torn, damaged)

    def _segment_paths(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.directory.iterdir():
            match = _SEGMENT_NAME.fullmatch(path.name)
            if match and path.is_file():
                found.append((int(match[1]), path))
        return sorted(found)

    def _read_consumed(self) -> int:
        path = self.directory / CONSUMED_FILE
        try:
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return 0
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("journal %s: %s unreadable (%s); replaying all", self.directory, path, exc)
            return 0
        if not text.isdigit():
            log.warning("journal %s: %s holds %.40r; replaying all", self.directory, path, text)
            return 0
        return int(text)

    def _scan(self, first_seq: int, path: Path, *, last: bool) -> tuple[_Segment, int, int]:
        """A segment's good content, counting its pending records; cuts a torn tail off
        the last segment. Returns (segment, torn bytes, damaged lines)."""
        segment = _Segment(first_seq, path, size=0, last_seq=first_seq - 1)
        bad: list[int] = []  # offsets of bad lines
        end = 0  # after the last good line
        with path.open("rb") as file:
            for offset, line in _lines(file):
                parsed = parse_line(line)
                if parsed is None:
                    bad.append(offset)
                    continue
                seq = parsed[0]
                end = offset + len(line)
                segment.last_seq = max(segment.last_seq, seq)
                if seq > self._consumed:
                    self._pending += 1
                    self._pending_bytes += len(line)
                    if self._cursor is None:
                        self._cursor = (first_seq, offset)
            total = file.seek(0, os.SEEK_END)
        segment.size = total
        torn = total - end if last else 0
        if torn:  # after the last good line of the last segment: a write cut short
            bad = [offset for offset in bad if offset < end]
            log.warning(
                "journal %s: the last %d bytes of %s are a write cut short (a crash while "
                "writing it?); skipped",
                self.directory,
                torn,
                path.name,
            )
            segment.size = end
            segment.sealed = not _truncate(path, end)
        for offset in bad:
            log.error(
                "journal %s: damaged record in %s at byte %d skipped",
                self.directory,
                path.name,
                offset,
            )
        return segment, torn, len(bad)

    # --- appending ----------------------------------------------------------------

    def append(self, payloads: Sequence[bytes]) -> int:
        """Write one record per payload (from :func:`dump_body`), fsynced; returns the
        pending count. Raises ``OSError`` (nothing of it counts as written)."""
        if not payloads:
            return self._pending
        segment, fd = self._appendable()
        lines = []
        seq = self._next_seq
        for payload in payloads:
            lines.append(record_line(seq, payload))
            seq += 1
        data = b"".join(lines)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        except OSError:
            self._undo_append(segment, fd)
            raise
        segment.size += len(data)
        segment.last_seq = seq - 1
        self._next_seq = seq
        self._pending += len(lines)
        self._pending_bytes += len(data)
        return self._pending

    def _appendable(self) -> tuple[_Segment, int]:
        last = self._segments[-1] if self._segments else None
        if last is None or last.sealed or last.size >= self._segment_bytes:
            self._close_fd()
            last = self._new_segment()
        if self._fd is None:
            self._fd = _open_private(last.path, os.O_WRONLY | os.O_APPEND)
        return last, self._fd

    def _new_segment(self) -> _Segment:
        path = self.directory / f"{self._next_seq:020d}.jnl"
        fd = _open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL)
        os.close(fd)
        files.fsync_dir(self.directory)  # the file's name survives a crash too
        segment = _Segment(self._next_seq, path, size=0, last_seq=self._next_seq - 1)
        self._segments.append(segment)
        if self._cursor is None:
            self._cursor = (segment.first_seq, 0)
        return segment

    def _undo_append(self, segment: _Segment, fd: int) -> None:
        """Cut a failed append off; if that fails too, seal the segment."""
        try:
            os.ftruncate(fd, segment.size)
        except OSError as exc:
            log.error(
                "journal %s: cannot cut a failed write off %s (%s); it takes no more appends",
                self.directory,
                segment.path.name,
                exc.strerror or exc,
            )
            segment.sealed = True
            self._close_fd()

    # --- reading and consuming --------------------------------------------------------

    def read(self, *, limit: int, max_bytes: int) -> list[Record]:
        """The next records not handed out yet, oldest first: at most ``limit`` of them
        and about ``max_bytes`` (one record at least). Damaged lines are skipped."""
        out: list[Record] = []
        total = 0
        while len(out) < limit and (not out or total < max_bytes):
            record = self._next_record()
            if record is None:
                break
            out.append(record)
            total += record.size
        self._handed.extend(out)
        if not out and not self._handed and self._pending:
            log.error(
                "journal %s: %d records were counted but none is left to read; forgetting them",
                self.directory,
                self._pending,
            )
            self._pending = self._pending_bytes = 0
        return out

    def _next_record(self) -> Record | None:
        while self._cursor is not None:
            first_seq, offset = self._cursor
            segment = self._segment(first_seq)
            if segment is None or offset >= segment.size:
                following = self._segment_after(first_seq)
                if following is None:
                    return None
                self._cursor = (following.first_seq, 0)
                continue
            line = self._line_at(segment, offset)
            self._cursor = (first_seq, offset + len(line))
            parsed = parse_line(line)
            if parsed is None:  # reported by open()
                log.debug("journal %s: skipping the damaged record at %d", self.directory, offset)
                if not line:
                    self._cursor = (first_seq, segment.size)
                continue
            seq, body = parsed
            if seq <= self._consumed:
                continue
            return Record(seq, body, len(line))
        return None

    def _line_at(self, segment: _Segment, offset: int) -> bytes:
        if self._reader is None or self._reader[0] != segment.path:
            self._close_reader()
            self._reader = (segment.path, segment.path.open("rb"))
        file = self._reader[1]
        file.seek(offset)
        return file.readline(segment.size - offset)

    def consume(self, seq: int) -> int:
        """Every record up to ``seq`` was replayed: remember it, delete what only they
        hold. Returns the pending count."""
        while self._handed and self._handed[0].seq <= seq:
            record = self._handed.popleft()
            self._pending -= 1
            self._pending_bytes -= record.size
        if seq <= self._consumed:
            return self._pending
        self._consumed = seq
        files.write_private(self.directory / CONSUMED_FILE, f"{seq}\n")
        self._drop_consumed_segments(keep_last=self._pending > 0)
        return self._pending

    def _drop_consumed_segments(self, *, keep_last: bool) -> None:
        """Delete the segments whose every record is consumed (the last one only when
        nothing at all is pending, and not ``keep_last``)."""
        kept = []
        for index, segment in enumerate(self._segments):
            is_last = index == len(self._segments) - 1
            if segment.last_seq > self._consumed or (is_last and keep_last):
                kept.append(segment)
                continue
            if is_last:
                self._close_fd()
            if self._reader is not None and self._reader[0] == segment.path:
                self._close_reader()
            segment.path.unlink(missing_ok=True)
        self._segments = kept
        if self._cursor is not None and self._segment(self._cursor[0]) is None:
            self._cursor = (kept[0].first_seq, 0) if kept else None

    def _segment(self, first_seq: int) -> _Segment | None:
        for segment in self._segments:
            if segment.first_seq == first_seq:
                return segment
        return None

    def _segment_after(self, first_seq: int) -> _Segment | None:
        for segment in self._segments:
            if segment.first_seq > first_seq:
                return segment
        return None

    # --- closing ----------------------------------------------------------------------

    def close(self) -> None:
        self._close_fd()
        self._close_reader()

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _close_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader[1].close()


# --- file helpers -----------------------------------------------------------------------


def _lines(file: BinaryIO) -> Iterator[tuple[int, bytes]]:
    offset = 0
    for line in file:
        yield offset, line
        offset += len(line)


def _open_private(path: Path, flags: int) -> int:
    """``os.open`` with mode 0600 (made so whatever the umask)."""
    fd = os.open(path, flags, files.PRIVATE_FILE)
    try:
        if os.fstat(fd).st_mode & 0o777 != files.PRIVATE_FILE:
            os.fchmod(fd, files.PRIVATE_FILE)
    except OSError:
        os.close(fd)
        raise
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _truncate(path: Path, size: int) -> bool:
    """Cut ``path`` to ``size`` bytes; False (and an error) when it cannot."""
    try:
        with path.open("r+b") as file:
            file.truncate(size)
            file.flush()
            os.fsync(file.fileno())
    except OSError as exc:
        log.error("journal: cannot cut the torn end off %s: %s", path, exc.strerror or exc)
        return False
    return True
