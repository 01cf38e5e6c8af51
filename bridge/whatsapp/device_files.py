"""The files of a whatsmeow session's device store, one set per session.

The device store is, per session:

- PostgreSQL, when the bridge runs on PostgreSQL: neonize takes the URL as its
  database name and whatsmeow keeps every session's device in its own tables there;
- otherwise one SQLite file per session in ``spec.device_dir``
  (``<key slug>.whatsmeow.db``), made private (0600 in a 0700 directory,
  bridge/files.py) before go-sqlite3 creates it.

Next to it, ``<key slug>.whatsmeow.json`` records the paired device's JID (and our
LID once known). It is what the engine's ``is_paired`` reads (no connection needed)
and what ``connect`` uses to pick the device out of a shared PostgreSQL store. It is
written on pairing success and removed on logout, with the SQLite store and its
``-wal``/``-shm`` files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass

from bridge import files
from bridge.errors import EngineError, InvalidInput
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


def stored_devices(database: str) -> list[str]:
    """JIDs of the devices in a whatsmeow store (a static neonize call, no client)."""
    from neonize.aioze.client import ClientFactory as NeonizeFactory

    try:
        devices = NeonizeFactory.get_all_devices_from_db(database)
    except ValueError as exc:  # neonize cannot parse the Go side's error string
        raise EngineError(f"could not read the WhatsApp device store: {exc}") from exc
    return [jids.jid_to_str(device.JID) for device in devices]
