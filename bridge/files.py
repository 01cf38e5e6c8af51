"""Files that hold secrets: 0600 in 0700 directories, whatever the umask.

The bridge's files hold secrets: the database (tokens, customer messages), the
WhatsApp device stores (keys that let anyone act as the phone), the sim's pairing
records, the media cache, and a config file with generated tokens. Everything
under ``data_dir`` is the bridge's own and private (docs/operations.md, "Files").

Creating: :func:`private_dir` and :func:`write_private` / :func:`append_private` /
:func:`create_private` set the mode explicitly after creating, so a umask of 0 (or
0777) changes nothing. Existing files: :func:`tighten_tree` and
:func:`tighten_files` take group and other permissions away at start and say so in
one INFO line. Symbolic links are never followed or changed. Blocking I/O: call
from a thread (``asyncio.to_thread``) inside the event loop.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "PRIVATE_DIR",
    "PRIVATE_FILE",
    "append_private",
    "create_private",
    "fsync_dir",
    "private_dir",
    "tighten_files",
    "tighten_tree",
    "write_private",
]

log = logging.getLogger("bridge.files")

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_SHOWN = 5  # paths named in the INFO line; the rest are counted


def private_dir(path: Path) -> Path:
    """Make ``path`` and every missing parent 0700 directories (existing parents
    are left alone: they are not the bridge's). Returns ``path``."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made by someone else meanwhile
            directory.mkdir(mode=PRIVATE_DIR)
            os.chmod(directory, PRIVATE_DIR)
    if not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))
    return path


def write_private(path: Path, data: str | bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically (a temporary file in the same
    directory, flushed to disk unless not ``durable``, then renamed), as a 0600 file.
    Without ``durable`` a crash of the process still leaves the old or the new file,
    a crash of the machine may leave neither."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, PRIVATE_FILE)
        with os.fdopen(fd, "wb") as file:
            file.write(data.encode("utf-8") if isinstance(data, str) else data)
            if durable:
                file.flush()
                os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def append_private(path: Path, text: str) -> None:
    """Append ``text`` to ``path``, created 0600 if missing."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE)
    with os.fdopen(fd, "a", encoding="utf-8") as file:
        if stat.S_IMODE(os.fstat(fd).st_mode) != PRIVATE_FILE:
            os.fchmod(fd, PRIVATE_FILE)
        file.write(text)


def create_private(path: Path) -> bool:
    """Create ``path`` empty and 0600 unless it exists (for a program such as
    SQLite that creates its files with the umask, and gives its -wal and -shm
    files the mode of the database). True when it was created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
    return True


def fsync_dir(directory: Path) -> None:
    """Flush ``directory`` itself, so a file created or renamed in it survives a crash
    under its new name."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tighten_tree(root: Path) -> list[Path]:
    """Make ``root`` a private directory (created if missing) and everything under
    it private: directories 0700, files 0600. Returns what was changed, after one
    INFO line naming it."""
    private_dir(root)
    changed = []
    if _tighten(root, is_dir=True):
        changed.append(root)
    for directory, subdirs, names in os.walk(root, onerror=_walk_error):
        base = Path(directory)
        changed += [base / d for d in subdirs if _tighten(base / d, is_dir=True)]
        changed += [base / n for n in names if _tighten(base / n, is_dir=False)]
    _report(changed, f"under {root}")
    return changed


def tighten_files(paths: Iterable[Path]) -> list[Path]:
    """Make the existing files among ``paths`` 0600; one INFO line if any changed."""
    changed = [path for path in paths if _tighten(path, is_dir=False)]
    _report(changed, "")
    return changed


def _tighten(path: Path, *, is_dir: bool) -> bool:
    """``path`` made 0600 (0700 for a directory) if group or others have any
    access; True when it changed. A path that vanished or a symbolic link is left
    alone; a refusal is a warning."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(info.st_mode) or stat.S_ISDIR(info.st_mode) != is_dir:
        return False
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077 == 0:  # group and others have nothing already
        return False
    try:
        os.chmod(path, PRIVATE_DIR if is_dir else PRIVATE_FILE)  # not a link: lstat said so
    except OSError as exc:
        log.warning("cannot make %s private (mode %04o): %s", path, mode, exc.strerror or exc)
        return False
    return True


def _walk_error(exc: OSError) -> None:
    log.warning("cannot look into %s: %s", exc.filename, exc.strerror or exc)


def _report(changed: list[Path], where: str) -> None:
    if not changed:
        return
    names = ", ".join(str(path) for path in changed[:_SHOWN])
    more = f" and {len(changed) - _SHOWN} more" if len(changed) > _SHOWN else ""
    place = f" {where}" if where else ""
    log.info(
        "made %d path(s)%s private (files 0600, directories 0700; group or others "
        "had access): %s%s",
        len(changed),
        place,
        names,
        more,
    )
