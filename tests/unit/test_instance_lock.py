"""The SQLite instance lock (bridge/db/instance_lock.py): one holder per database
file, named to whoever is refused; the lock file private; a holder that died without
a word blocks nobody."""

from __future__ import annotations

import fcntl
import os
import re
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.db.database import Database
from bridge.db.instance_lock import (
    Holder,
    InstanceLocked,
    SQLiteInstanceLock,
    take_instance_lock,
)
from bridge.errors import DatabaseError

SINCE = 1796516105.0  # 2026-12-06 00:15:05 UTC


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = await Database.connect(f"sqlite:{tmp_path / 'bridge.db'}")
    try:
        yield db
    finally:
        await db.close()


def test_a_holder_reads_back_from_its_lock_file_text() -> None:
    holder = Holder(host="host-a", pid=4242, since=SINCE, instance="a1")
    assert Holder.from_json(holder.to_json()) == holder
    assert holder.describe() == "pid 4242 on host-a (instance a1), since 2026-12-06 00:15:05 UTC"
    plain = Holder(host="host-a", pid=1, since=SINCE)
    assert Holder.from_json(plain.to_json()) == plain
    assert plain.describe() == "pid 1 on host-a, since 2026-12-06 00:15:05 UTC"


@pytest.mark.parametrize(
    "text",
    ["", "{", "[]", '{"host": 1, "pid": 2, "since": 3}', '{"host": "h", "pid": "2", "since": 3}'],
)
def test_a_lock_file_naming_nobody_readable_is_no_holder(text: str) -> None:
    assert Holder.from_json(text) is None


def test_a_holder_reads_back_from_its_application_name() -> None:
    holder = Holder(host="bridge-1", pid=7, since=SINCE, instance="bridge-1-7")
    name = holder.application_name()
    assert name == "zapbridge 7@bridge-1 20261206T001505Z bridge-1-7"
    assert Holder.from_application_name(name) == holder
    long = Holder(host="h" * 80, pid=7, since=SINCE).application_name()
    assert len(long.encode()) == 63  # what PostgreSQL keeps
    assert Holder.from_application_name("psql") is None
    assert Holder.from_application_name("zapbridge x@h 20261206T001505Z") is None


def test_a_description_shows_no_control_characters_and_stays_short() -> None:
    holder = Holder(host="evil\nhost" + "x" * 200, pid=1, since=SINCE)
    text = holder.describe()
    assert "\n" not in text and "evil?host" in text
    assert len(text) < 120


async def test_a_second_holder_is_refused_with_one_line_naming_the_first(
    database: Database, tmp_path: Path
) -> None:
    first = await take_instance_lock(database, exclusive=True, instance="one")
    try:
        with pytest.raises(InstanceLocked) as refused:
            await take_instance_lock(database, exclusive=True)
        line = refused.value.explanation
        assert "\n" not in line
        assert line.startswith(f"another zapbridge instance uses sqlite:{tmp_path / 'bridge.db'}: ")
        assert re.search(rf"pid {os.getpid()} on \S+ \(instance one\), since \d{{4}}-", line)
        assert line.endswith(
            "; stop it, or use PostgreSQL with cluster.enabled to run several instances"
        )
    finally:
        await first.release()
    again = await take_instance_lock(database, exclusive=True)  # released: free again
    await again.release()
    await again.release()  # twice is harmless


async def test_sqlite_is_exclusive_even_when_asked_to_share(database: Database) -> None:
    first = await take_instance_lock(database, exclusive=False)
    try:
        with pytest.raises(InstanceLocked):
            await take_instance_lock(database, exclusive=False)
    finally:
        await first.release()


async def test_the_lock_file_is_private_whatever_the_umask(
    database: Database, tmp_path: Path
) -> None:
    path = tmp_path / "bridge.db.lock"
    path.write_text("")
    path.chmod(0o644)  # left by an older run
    old = os.umask(0)
    try:
        lock = await take_instance_lock(database, exclusive=True)
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert Holder.from_json(path.read_text()) is not None
    finally:
        await lock.release()
    assert path.read_text() == ""  # a clean stop leaves nobody named


async def test_a_stale_description_left_by_a_dead_holder_blocks_nobody(
    database: Database, tmp_path: Path
) -> None:
    path = tmp_path / "bridge.db.lock"
    path.write_text(Holder(host="gone", pid=999999, since=SINCE).to_json())  # kill -9 left it
    lock = await take_instance_lock(database, exclusive=True)
    try:
        holder = Holder.from_json(path.read_text())
        assert holder is not None and holder.pid == os.getpid()
    finally:
        await lock.release()


async def test_a_holder_that_has_not_written_yet_is_still_a_holder(tmp_path: Path) -> None:
    database = tmp_path / "bridge.db"
    lock_path = SQLiteInstanceLock.path_for(database)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(InstanceLocked, match="a process that has not said who it is yet"):
            SQLiteInstanceLock.take(database, Holder.this_process())
    finally:
        os.close(fd)


async def test_a_lock_path_that_is_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("")
    database = tmp_path / "bridge.db"
    SQLiteInstanceLock.path_for(database).symlink_to(target)
    with pytest.raises(DatabaseError, match=r"cannot open the lock file .*bridge\.db\.lock"):
        SQLiteInstanceLock.take(database, Holder.this_process())
    assert target.read_text() == ""


async def test_an_in_memory_database_needs_no_lock() -> None:
    db = await Database.connect("sqlite::memory:")
    try:
        first = await take_instance_lock(db, exclusive=True)
        second = await take_instance_lock(db, exclusive=True)  # not refused
        assert not isinstance(first, SQLiteInstanceLock)  # nothing held: no file to lock
        await first.release()
        await second.release()
    finally:
        await db.close()
