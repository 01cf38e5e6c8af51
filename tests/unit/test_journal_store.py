"""The journal's file format (bridge/journal/store.py): order, torn and damaged records,
fsync, private modes, consuming, sequence numbers across restarts."""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.journal import store as store_module
from bridge.journal.store import (
    CONSUMED_FILE,
    JournalStore,
    dump_body,
    parse_line,
    record_line,
)


def opened(directory: Path, **kwargs: int) -> JournalStore:
    journal = JournalStore(directory, **kwargs)
    journal.open()
    return journal


def append(journal: JournalStore, *bodies: dict) -> int:  # type: ignore[type-arg]
    return journal.append([dump_body(body) for body in bodies])


def read_all(journal: JournalStore) -> list[dict]:  # type: ignore[type-arg]
    return [record.body for record in journal.read(limit=10_000, max_bytes=1 << 30)]


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.jnl"))


@pytest.fixture
def umask_zero() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_records_come_back_in_the_order_they_were_appended(tmp_path: Path) -> None:
    journal = opened(tmp_path / "j")
    assert append(journal, {"n": 1}, {"n": 2}) == 2
    assert append(journal, {"n": 3, "text": "Olá 🎉\n\u2028"}) == 3
    assert read_all(journal) == [{"n": 1}, {"n": 2}, {"n": 3, "text": "Olá 🎉\n\u2028"}]
    assert read_all(journal) == []  # handed out once
    # every line is ASCII: a raw newline inside a record is impossible
    data = segments(tmp_path / "j")[0].read_bytes()
    assert data.isascii() and data.count(b"\n") == 3


def test_a_reopened_journal_gives_what_was_not_consumed(tmp_path: Path) -> None:
    journal = opened(tmp_path)
    append(journal, *({"n": n} for n in range(5)))
    records = journal.read(limit=2, max_bytes=1 << 20)
    assert [r.body["n"] for r in records] == [0, 1]
    assert journal.consume(records[-1].seq) == 3
    journal.close()

    again = opened(tmp_path)
    assert again.pending == 3
    assert [body["n"] for body in read_all(again)] == [2, 3, 4]


def test_a_record_read_but_not_consumed_comes_back_after_a_restart(tmp_path: Path) -> None:
    journal = opened(tmp_path)
    append(journal, {"n": 1}, {"n": 2})
    assert len(read_all(journal)) == 2  # handed out, then the process dies
    journal.close()
    assert [b["n"] for b in read_all(opened(tmp_path))] == [1, 2]


def test_consuming_everything_removes_the_segments_and_numbers_go_on(tmp_path: Path) -> None:
    journal = opened(tmp_path)
    append(journal, {"n": 1}, {"n": 2})
    records = journal.read(limit=10, max_bytes=1 << 20)
    assert journal.consume(records[-1].seq) == 0
    assert segments(tmp_path) == []
    assert (tmp_path / CONSUMED_FILE).read_text() == "2\n"
    journal.close()

    # after a restart the next record is number 3, so it is not taken for consumed
    again = opened(tmp_path)
    append(again, {"n": 3})
    [record] = again.read(limit=10, max_bytes=1 << 20)
    assert (record.seq, record.body) == (3, {"n": 3})
    again.close()
    assert [b["n"] for b in read_all(opened(tmp_path))] == [3]


def test_segments_rotate_and_consumed_ones_are_deleted(tmp_path: Path) -> None:
    journal = opened(tmp_path, segment_bytes=200)
    for n in range(12):
        append(journal, {"n": n, "pad": "x" * 40})
    assert len(segments(tmp_path)) > 3
    records = journal.read(limit=6, max_bytes=1 << 20)
    journal.consume(records[-1].seq)
    left = segments(tmp_path)
    assert 0 < len(left) < 12
    # the first segment left still holds an unconsumed record
    assert [b["n"] for b in read_all(journal)] == list(range(6, 12))
    journal.close()
    assert [b["n"] for b in read_all(opened(tmp_path, segment_bytes=200))] == list(range(6, 12))


def test_a_torn_last_record_is_skipped_with_a_warning_and_cut_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = opened(tmp_path)
    append(journal, {"n": 1}, {"n": 2})
    journal.close()
    [segment] = segments(tmp_path)
    good = segment.stat().st_size
    with segment.open("ab") as file:  # the process died in the middle of a write
        file.write(record_line(3, dump_body({"n": 3}))[:-7])

    with caplog.at_level(logging.WARNING, logger="bridge.journal"):
        again = JournalStore(tmp_path)
        report = again.open()
    assert (report.pending, report.damaged) == (2, 0) and report.torn > 0
    assert "cut short" in caplog.text
    assert segment.stat().st_size == good  # cut off: the next append starts a clean line
    append(again, {"n": 4})
    assert [b["n"] for b in read_all(again)] == [1, 2, 4]
    again.close()
    assert [b["n"] for b in read_all(opened(tmp_path))] == [1, 2, 4]


def test_a_last_record_with_a_bad_checksum_is_a_torn_write_too(tmp_path: Path) -> None:
    journal = opened(tmp_path)
    append(journal, {"n": 1})
    journal.close()
    [segment] = segments(tmp_path)
    line = bytearray(record_line(2, dump_body({"n": 2})))
    line[-3] ^= 0x01  # a flipped bit in the body
    with segment.open("ab") as file:
        file.write(bytes(line) + b"\x00" * 16)  # and zeros, as after a power cut
    again = JournalStore(tmp_path)
    assert again.open().torn == len(line) + 16
    assert read_all(again) == [{"n": 1}]


def test_a_damaged_record_in_the_middle_is_skipped_with_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = opened(tmp_path)
    append(journal, {"n": 1}, {"n": 2}, {"n": 3})
    journal.close()
    [segment] = segments(tmp_path)
    lines = segment.read_bytes().splitlines(keepends=True)
    segment.write_bytes(lines[0] + lines[1].replace(b'"n":2', b'"n":9') + lines[2])

    with caplog.at_level(logging.ERROR, logger="bridge.journal"):
        again = JournalStore(tmp_path)
        report = again.open()
    assert (report.pending, report.damaged, report.torn) == (2, 1, 0)
    assert "damaged record" in caplog.text
    assert [b["n"] for b in read_all(again)] == [1, 3]


def test_garbage_files_and_other_formats_are_not_records(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    assert parse_line(b"zj2 1 00000000 {}\n") is None
    assert parse_line(b"zj1 1 zzzzzzzz {}\n") is None
    assert parse_line(b"zj1 -1 00000000 {}\n") is None
    line = record_line(7, dump_body({"a": [1, "b"]}))
    assert parse_line(line) == (7, {"a": [1, "b"]})
    assert parse_line(line[:-1]) is None  # no newline: torn
    assert opened(tmp_path).pending == 0


def test_append_fsyncs_before_it_returns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(store_module.os, "fsync", fsync)
    journal = opened(tmp_path)
    append(journal, {"n": 1})
    # the new segment's directory entry, then the data
    assert len(synced) == 2
    append(journal, {"n": 2}, {"n": 3})
    assert len(synced) == 3  # one fsync per append, however many records


def test_a_failed_append_leaves_no_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = opened(tmp_path)
    append(journal, {"n": 1})
    real_write = os.write

    def disk_full(fd: int, data: bytes | memoryview) -> int:
        real_write(fd, bytes(data)[:10])  # part of it lands, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module.os, "write", disk_full)
    with pytest.raises(OSError, match="No space"):
        append(journal, {"n": 2})
    monkeypatch.setattr(store_module.os, "write", real_write)
    assert journal.pending == 1
    append(journal, {"n": 3})
    assert [b["n"] for b in read_all(journal)] == [1, 3]
    journal.close()
    report = JournalStore(tmp_path).open()
    assert (report.pending, report.torn, report.damaged) == (2, 0, 0)


def test_files_are_private_whatever_the_umask(tmp_path: Path, umask_zero: None) -> None:
    directory = tmp_path / "data" / "journal" / "whatsapp"
    journal = opened(directory)
    append(journal, {"customer": "Maria"})
    records = journal.read(limit=1, max_bytes=1 << 20)
    append(journal, {"customer": "João"})
    journal.consume(records[0].seq)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    for path in [*segments(directory), directory / CONSUMED_FILE]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_an_unreadable_consumed_file_replays_everything(tmp_path: Path) -> None:
    journal = opened(tmp_path)
    append(journal, {"n": 1}, {"n": 2})
    journal.consume(journal.read(limit=1, max_bytes=1 << 20)[0].seq)
    journal.close()
    (tmp_path / CONSUMED_FILE).write_text("garbage")
    assert [b["n"] for b in read_all(opened(tmp_path))] == [1, 2]  # the relay dedupes


def test_bodies_that_are_not_plain_json_are_refused_before_writing() -> None:
    with pytest.raises(ValueError):
        dump_body({"t": float("nan")})
    with pytest.raises(TypeError):
        dump_body({"b": b"bytes"})


# --- a model of the journal under any sequence of operations ------------------------------

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 4)),
        st.tuples(st.just("read"), st.integers(1, 5)),
        st.tuples(st.just("consume"), st.just(0)),
        st.tuples(st.just("reopen"), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(ops=OPS)
def test_any_sequence_of_operations_matches_a_simple_queue(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int]]
) -> None:
    """Appends, partial reads, consuming what was read and restarts: the journal gives
    every appended record exactly once per run, in order, until it is consumed."""
    directory = tmp_path_factory.mktemp("model")
    journal = opened(directory, segment_bytes=120)
    queue: list[int] = []  # appended, not consumed, in order
    handed = 0  # of queue, how many were read in this run
    last_seq = 0  # the sequence number of the last record read
    counter = 0
    for op, n in ops:
        if op == "append":
            bodies = [{"n": counter + i} for i in range(n)]
            counter += n
            append(journal, *bodies)
            queue += [b["n"] for b in bodies]
        elif op == "read":
            records = journal.read(limit=n, max_bytes=1 << 20)
            assert [r.body["n"] for r in records] == queue[handed : handed + n]
            handed += len(records)
            last_seq = records[-1].seq if records else last_seq
        elif op == "consume" and handed:
            journal.consume(last_seq)
            queue, handed = queue[handed:], 0
        elif op == "reopen":
            journal.close()
            journal = opened(directory, segment_bytes=120)
            handed = 0
        assert journal.pending == len(queue)
    journal.close()
    assert [b["n"] for b in read_all(opened(directory, segment_bytes=120))] == queue
