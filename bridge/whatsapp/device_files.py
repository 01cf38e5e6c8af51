"""The files of a whatsmeow session's device store, one set per session.

The device store is, per session:

- PostgreSQL, when the bridge runs on PostgreSQL: neonize takes the URL as its
  database name and whatsmeow keeps every session's device in its own tables there;
- otherwise one SQLite file per session in ``spec.device_dir``
  (``<key slug>.whatsmeow.db``), made private (0600 in a 0700 directory,
  bridge/files.py) before go-sqlite3 creates it.

The pairing record holds the paired device's JID (and our LID once known). It is
what the engine's ``is_paired`` reads (no connection needed) and what ``connect``
uses to pick the device out of a shared PostgreSQL store. It is written on pairing
success and removed on logout (with a SQLite store and its ``-wal``/``-shm`` files).
Where it lives follows the store (:class:`PairingRecords`, docs/cluster.md "Device
stores"):

- with a PostgreSQL store, in the same database (the ``device_pairings`` table, a
  :class:`PairingStore`), so every instance sees which device a session is linked
  as and any of them can run it without a new QR code. A record file left by an
  earlier version is moved there the first time it is read;
- with a SQLite store, in ``<key slug>.whatsmeow.json`` next to the store file: the
  two travel together, and a SQLite bridge runs as one instance anyway.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from typing import Protocol

from bridge import files
from bridge.errors import DatabaseError, EngineError, InvalidInput
from bridge.whatsapp import jid as jids
from bridge.whatsapp import wa_inbound as inbound
from bridge.whatsapp.engine import SessionSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pairing:
    """What the engine remembers of a paired device (the ``.whatsmeow.json`` file)."""

    jid: str
    lid: str | None = None

    @property
    def identity(self) -> inbound.Identity:
        return inbound.Identity(phone_user=jids.parse_jid(self.jid).User, lid_user=self.lid)


def _file_stem(key: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", key).strip("_") or "session"
    return f"{slug}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


class DeviceFiles:
    """A session's device store location and pairing record. Blocking file I/O:
    call through ``asyncio.to_thread``."""

    def __init__(self, spec: SessionSpec) -> None:
        stem = _file_stem(spec.key)
        self.spec = spec
        self.record = spec.device_dir / f"{stem}.whatsmeow.json"
        self.sqlite = spec.device_dir / f"{stem}.whatsmeow.db"

    @property
    def postgres(self) -> bool:
        url = self.spec.database_url or ""
        return url.startswith(("postgres://", "postgresql://"))

    @property
    def database(self) -> str:
        """What neonize gets as its database name: the URL, or the SQLite path."""
        if self.postgres and self.spec.database_url:
            return self.spec.database_url
        return str(self.sqlite.resolve())

    def prepare(self) -> None:
        """A 0700 directory, and for SQLite the store made 0600 before go-sqlite3
        creates it with the umask (bridge/files.py)."""
        files.private_dir(self.spec.device_dir)
        if not self.postgres:
            files.create_private(self.sqlite)

    def read(self) -> Pairing | None:
        try:
            data = json.loads(self.record.read_text(encoding="utf-8"))
            pairing = Pairing(jid=str(data["jid"]), lid=data.get("lid") or None)
            jids.parse_jid(pairing.jid)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, InvalidInput) as exc:
            log.warning("ignoring unreadable pairing record %s: %s", self.record, exc)
            return None
        return pairing

    def is_paired(self) -> bool:
        return self.read() is not None and (self.postgres or self.sqlite.exists())

    def write(self, pairing: Pairing) -> None:
        files.private_dir(self.spec.device_dir)
        files.write_private(self.record, json.dumps({"jid": pairing.jid, "lid": pairing.lid}))

    def forget(self) -> None:
        """Drop the pairing record and, for SQLite, the device store itself."""
        paths = [self.record]
        if not self.postgres:
            paths += [self.sqlite.with_name(self.sqlite.name + s) for s in ("", "-wal", "-shm")]
        for path in paths:
            path.unlink(missing_ok=True)


class StoredPairing(Protocol):
    @property
    def jid(self) -> str: ...
    @property
    def lid(self) -> str | None: ...


class PairingStore(Protocol):
    """Pairing records in the database (bridge/db/devices.py implements it)."""

    async def get(self, session_key: str) -> StoredPairing | None: ...
    async def put(self, session_key: str, *, jid: str, lid: str | None) -> None: ...
    async def delete(self, session_key: str) -> None: ...


class PairingRecords:
    """Reads and writes pairing records: in ``store`` for sessions on a PostgreSQL
    device store, in their files otherwise (see the module doc). A database failure
    is an :class:`EngineError` (the session manager retries)."""

    def __init__(self, store: PairingStore | None = None) -> None:
        self._store = store

    def _in_database(self, device: DeviceFiles) -> bool:
        return self._store is not None and device.postgres

    async def read(self, device: DeviceFiles) -> Pairing | None:
        if self._store is None or not device.postgres:
            return await asyncio.to_thread(device.read)
        key = device.spec.key
        try:
            row = await self._store.get(key)
            if row is not None:
                return Pairing(jid=row.jid, lid=row.lid)
            legacy = await asyncio.to_thread(device.read)
            if legacy is not None:  # a record file of an earlier version: move it
                await self._store.put(key, jid=legacy.jid, lid=legacy.lid)
                await asyncio.to_thread(device.record.unlink, missing_ok=True)
                log.info("session %s: pairing record moved into the database", key)
            return legacy
        except DatabaseError as exc:
            raise EngineError(f"could not read the pairing of {key}: {exc.explanation}") from exc

    async def is_paired(self, device: DeviceFiles) -> bool:
        """A pairing record, and for SQLite the store file it belongs to."""
        if await self.read(device) is None:
            return False
        return device.postgres or await asyncio.to_thread(device.sqlite.exists)

    async def write(self, device: DeviceFiles, pairing: Pairing) -> None:
        if self._store is None or not device.postgres:
            await asyncio.to_thread(device.write, pairing)
            return
        try:
            await self._store.put(device.spec.key, jid=pairing.jid, lid=pairing.lid)
        except DatabaseError as exc:
            raise EngineError(f"could not record the pairing: {exc.explanation}") from exc

    async def forget(self, device: DeviceFiles) -> None:
        """Drop the pairing record (and a SQLite store with its files)."""
        if self._in_database(device) and self._store is not None:
            try:
                await self._store.delete(device.spec.key)
            except DatabaseError as exc:
                raise EngineError(f"could not drop the pairing: {exc.explanation}") from exc
        await asyncio.to_thread(device.forget)


def stored_devices(database: str) -> list[str]:
    """JIDs of the devices in a whatsmeow store (a static neonize call, no client)."""
    from neonize.aioze.client import ClientFactory as NeonizeFactory

    try:
        devices = NeonizeFactory.get_all_devices_from_db(database)
    except ValueError as exc:  # neonize cannot parse the Go side's error string
        raise EngineError(f"could not read the WhatsApp device store: {exc}") from exc
    return [jids.jid_to_str(device.JID) for device in devices]
