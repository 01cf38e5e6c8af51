"""The media store: content-addressed, atomic, private, checked on the way back."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from pathlib import Path

import pytest

from bridge.clock import FakeClock
from bridge.errors import PermanentDeliveryError
from bridge.media_store import MediaStore
from bridge.model import StoredBytes

DATA = b"\x89PNG fake image bytes" * 100


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> MediaStore:
    return MediaStore(tmp_path / "data" / "media", clock=clock)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_bytes_come_back_by_their_sha256(store: MediaStore) -> None:
    ref = await store.put(DATA)
    assert ref == StoredBytes(hashlib.sha256(DATA).hexdigest(), len(DATA))
    assert await store.get(ref) == DATA
    path = store.path_of(ref.sha256)
    assert path == store.root / ref.sha256[:2] / ref.sha256
    assert files_under(store.root) == [path]  # no temporary file left behind


async def test_files_are_private(store: MediaStore) -> None:
    old = os.umask(0o022)
    try:
        ref = await store.put(DATA)
    finally:
        os.umask(old)
    path = store.path_of(ref.sha256)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert mode(store.root) == 0o700


async def test_a_file_carries_the_clock_time_and_a_new_write_renews_it(
    store: MediaStore, clock: FakeClock
) -> None:
    ref = await store.put(DATA)
    path = store.path_of(ref.sha256)
    assert path.stat().st_mtime == clock.now()
    await clock.advance(3600)
    assert await store.put(DATA) == ref
    assert path.stat().st_mtime == clock.now()


async def test_concurrent_writes_of_the_same_bytes_make_one_whole_file(store: MediaStore) -> None:
    data = os.urandom(2 * 1024 * 1024)
    refs = await asyncio.gather(*(store.put(data) for _ in range(16)))
    assert len(set(refs)) == 1
    assert files_under(store.root) == [store.path_of(refs[0].sha256)]
    assert await store.get(refs[0]) == data


async def test_a_write_that_fails_leaves_no_file(
    store: MediaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="No space"):
        await store.put(DATA)
    assert files_under(store.root) == []


async def test_a_damaged_file_is_written_again_whole(store: MediaStore) -> None:
    ref = await store.put(DATA)
    store.path_of(ref.sha256).write_bytes(DATA[:10])  # cut short (a disk fault)
    assert await store.put(DATA) == ref
    assert await store.get(ref) == DATA


async def test_a_missing_file_is_a_permanent_failure_that_says_so(store: MediaStore) -> None:
    ref = StoredBytes(hashlib.sha256(b"gone").hexdigest(), 4)
    with pytest.raises(PermanentDeliveryError) as caught:
        await store.get(ref)
    assert "no longer in the media store" in caught.value.explanation
    assert ref.sha256[:12] in caught.value.explanation


@pytest.mark.parametrize(
    "damage",
    [lambda data: data[:-1], lambda data: data[:-1] + b"X"],
    ids=["truncated", "changed"],
)
async def test_a_damaged_file_is_refused(store: MediaStore, damage) -> None:  # type: ignore[no-untyped-def]
    ref = await store.put(DATA)
    path = store.path_of(ref.sha256)
    path.write_bytes(damage(DATA))
    with pytest.raises(PermanentDeliveryError, match="damaged"):
        await store.get(ref)


@pytest.mark.parametrize("name", ["../../etc/passwd", "ab", "A" * 64, "0" * 63 + "/"])
async def test_a_reference_that_is_no_sha256_names_no_path(store: MediaStore, name: str) -> None:
    with pytest.raises(ValueError):
        store.path_of(name)
    with pytest.raises(PermanentDeliveryError, match="names no valid file"):
        await store.get(StoredBytes(name, 1))


async def test_stale_finds_old_files_and_remove_spares_one_written_again(
    store: MediaStore, clock: FakeClock
) -> None:
    old = await store.put(b"old")
    again = await store.put(b"written again")
    await clock.advance(100)
    fresh = await store.put(b"fresh")
    stale = await store.stale(before=clock.now() - 50, limit=1000)
    assert sorted(stale) == sorted([old.sha256, again.sha256])
    await store.put(b"written again")  # between the scan and the removal
    assert await store.remove(stale, before=clock.now() - 50) == 1
    assert [p.name for p in files_under(store.root)] == sorted([again.sha256, fresh.sha256])
    assert await store.remove([old.sha256], before=clock.now()) == 0  # gone already


async def test_stale_removes_old_leftovers_of_a_crash(store: MediaStore, clock: FakeClock) -> None:
    ref = await store.put(DATA)
    leftover = store.path_of(ref.sha256).with_name(f".{ref.sha256}.dead.tmp")
    leftover.write_bytes(DATA[:5])
    os.utime(leftover, (clock.now(), clock.now()))
    assert await store.stale(before=clock.now(), limit=1000) == []  # not old yet
    assert leftover.exists()
    assert await store.stale(before=clock.now() + 1, limit=1000) == [ref.sha256]
    assert not leftover.exists()


async def test_stale_looks_at_a_bounded_number_of_files_per_call(store: MediaStore) -> None:
    refs = [await store.put(f"file {n}".encode()) for n in range(40)]
    seen: list[str] = []
    calls = 0
    while len(seen) < len(refs):
        found = await store.stale(before=float("inf"), limit=1)
        seen += found
        calls += 1
        assert len({name[:2] for name in found}) <= 1  # one shard's files at a time
        assert calls <= 256, "the scan did not go round"
    assert sorted(seen) == sorted(ref.sha256 for ref in refs)
