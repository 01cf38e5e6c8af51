"""The media store: files' bytes kept under ``data_dir/media/``, named by their sha256.

Message rows hold a reference to a file here (``{"sha256": …, "size": …}``), never
the bytes themselves (``bridge.model.StoredBytes``). Layout:
``media/<first two hex digits>/<sha256>``; directories are 0700, files 0600
(``bridge.files``).

- **Writing is atomic**: the bytes go to a temporary file in the final directory,
  which is fsynced, renamed over the final name, and the directory fsynced. A crash
  leaves either no file or the whole file (a leftover temporary file is removed by
  :meth:`MediaStore.stale` once it is old). The same content written twice, even
  at once, ends as one file: the names are the content's hash.
- **Each file carries its time**: written or written again, its mtime is set to the
  bridge clock's ``now``; :meth:`MediaStore.stale` finds files older than a moment,
  :meth:`MediaStore.remove` removes them unless they were written again meanwhile
  (the clean-up in ``bridge.core.media_cleanup`` decides which).
- **Reading checks** the size and the sha256 (hashlib runs in the reading thread
  without the GIL: about 1 ms per MB). A file that is missing or damaged is a
  ``PermanentDeliveryError`` whose explanation the ticket's thread shows.

File work runs in worker threads, so a 100 MB file never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import secrets
import threading
from pathlib import Path

from bridge.clock import Clock
from bridge.errors import PermanentDeliveryError
from bridge.files import PRIVATE_FILE, fsync_dir, private_dir
from bridge.model import StoredBytes

log = logging.getLogger("bridge.media_store")

_DIGEST = re.compile(r"[0-9a-f]{64}")
_TEMP_SUFFIX = ".tmp"
_SHARDS = [f"{n:02x}" for n in range(256)]


class MediaStore:
    """Bytes by sha256 under ``root`` (``data_dir/media``)."""

    def __init__(self, root: Path, *, clock: Clock) -> None:
        self._root = root
        self._clock = clock
        # Held around "written again?" and "remove if still old": a file written
        # again while the clean-up looks at it is never removed under the writer.
        self._lock = threading.Lock()
        self._next_shard = 0  # where the next stale() scan starts

    @property
    def root(self) -> Path:
        return self._root

    def path_of(self, sha256: str) -> Path:
        """Where the file ``sha256`` lives; ``ValueError`` for a name that is no sha256."""
        if not _DIGEST.fullmatch(sha256):
            raise ValueError(f"not a sha256 in hex: {sha256[:80]!r}")
        return self._root / sha256[:2] / sha256

    # --- writing -----------------------------------------------------------------

    async def put(self, data: bytes) -> StoredBytes:
        """Keep ``data``; returns its reference. Durable once this returns."""
        return await asyncio.to_thread(self._put, data, self._clock.now())

    def _put(self, data: bytes, now: float) -> StoredBytes:
        ref = StoredBytes(hashlib.sha256(data).hexdigest(), len(data))
        path = self.path_of(ref.sha256)
        if self._touch_if_whole(path, ref.size, now):
            return ref
        _private_dirs_synced(path.parent)
        temp = path.with_name(f".{ref.sha256}.{secrets.token_hex(4)}{_TEMP_SUFFIX}")
        try:
            _write_synced(temp, data)
            os.utime(temp, (now, now))
            with self._lock:
                os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            raise
        fsync_dir(path.parent)
        return ref

    def _touch_if_whole(self, path: Path, size: int, now: float) -> bool:
        """An existing file of the right size gets the new time: it is needed again."""
        with self._lock:
            try:
                if path.stat().st_size != size:
                    return False  # damaged: written again whole
                os.utime(path, (now, now))
            except FileNotFoundError:
                return False
        return True

    # --- reading -----------------------------------------------------------------

    async def get(self, ref: StoredBytes) -> bytes:
        """The bytes of ``ref``; ``PermanentDeliveryError`` if missing or damaged."""
        return await asyncio.to_thread(self._get, ref)

    def _get(self, ref: StoredBytes) -> bytes:
        try:
            path = self.path_of(ref.sha256)
            data = path.read_bytes()
        except ValueError as exc:
            raise PermanentDeliveryError(f"the message names no valid file ({exc})") from exc
        except FileNotFoundError as exc:
            raise PermanentDeliveryError(
                f"the file {ref.sha256[:12]}… is no longer in the media store "
                f"({self._root}); it cannot be sent"
            ) from exc
        except OSError as exc:
            raise PermanentDeliveryError(
                f"cannot read the file {ref.sha256[:12]}… from the media store: {exc.strerror}"
            ) from exc
        if len(data) != ref.size or hashlib.sha256(data).hexdigest() != ref.sha256:
            log.error("media file %s is damaged (%d bytes, expected %d)", path, len(data), ref.size)
            raise PermanentDeliveryError(
                f"the file {ref.sha256[:12]}… in the media store is damaged; it cannot be sent"
            )
        return data

    # --- clean-up ------------------------------------------------------------------

    async def stale(self, *, before: float, limit: int) -> list[str]:
        """Names (sha256) of files last written before ``before``: the shards from
        where the previous call stopped, until ``limit`` entries were looked at (a
        bounded pass; successive calls go round). Temporary files that old are
        leftovers of a crash and are removed here."""
        return await asyncio.to_thread(self._stale, before, limit)

    def _stale(self, before: float, limit: int) -> list[str]:
        found: list[str] = []
        looked = 0
        for _ in range(len(_SHARDS)):
            shard = self._root / _SHARDS[self._next_shard]
            self._next_shard = (self._next_shard + 1) % len(_SHARDS)
            looked += self._scan_shard(shard, before, found)
            if looked >= limit:
                break
        return found

    def _scan_shard(self, shard: Path, before: float, found: list[str]) -> int:
        try:
            entries = list(os.scandir(shard))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                old = entry.stat(follow_symlinks=False).st_mtime < before
            except FileNotFoundError:
                continue
            if not old:
                continue
            if entry.name.endswith(_TEMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
            elif _DIGEST.fullmatch(entry.name):
                found.append(entry.name)
        return len(entries)

    async def remove(self, names: list[str], *, before: float) -> int:
        """Remove each file of ``names`` still last written before ``before``; how many."""
        return await asyncio.to_thread(self._remove, names, before)

    def _remove(self, names: list[str], before: float) -> int:
        removed = 0
        for name in names:
            path = self.path_of(name)
            with self._lock:
                try:
                    if path.stat().st_mtime >= before:
                        continue  # written again since it was found stale
                    path.unlink()
                except FileNotFoundError:
                    continue
            removed += 1
        return removed


# bridge.files.write_private cannot serve here: the rename must happen under the
# store's lock (see _put) and the directory be fsynced after it.


def _private_dirs_synced(directory: Path) -> None:
    """``directory`` and its missing parents as private directories (bridge.files),
    the entries of those it made durable."""
    missing = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    private_dir(directory)
    for made in reversed(missing):
        fsync_dir(made.parent)


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)  # the umask may have taken bits away
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
