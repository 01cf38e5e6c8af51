"""The files of one simulated session (``data_dir/sim/<company>/<session>/``):
its paired device, its outbound log and the LID ↔ phone links it learned.

Files are tiny and written synchronously, so the log order is the send order; each
is private (0600 in 0700 directories, bridge/files.py).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge import files
from bridge.errors import EngineError


@dataclass(frozen=True)
class SimDevice:
    """A paired (linked) device of one simulated session."""

    phone: str
    paired_at: float
    auto: bool = False


class SimSessionStore:
    """The files of one simulated session: ``device.json``, ``outbound.jsonl`` and
    ``lids.jsonl`` (the LID ↔ phone links it learned)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.device_path = directory / "device.json"
        self.outbound_path = directory / "outbound.jsonl"
        self.lids_path = directory / "lids.jsonl"

    def load_device(self) -> SimDevice | None:
        if not self.device_path.exists():
            return None
        try:
            data = json.loads(self.device_path.read_text(encoding="utf-8"))
            return SimDevice(phone=data["phone"], paired_at=data["paired_at"], auto=data["auto"])
        except (ValueError, KeyError, TypeError) as exc:
            raise EngineError(f"sim device store {self.device_path} is corrupt: {exc}") from exc

    def save_device(self, device: SimDevice) -> None:
        """Not fsynced: a simulated pairing need not outlive a power cut, and 10,000
        auto-paired sessions spent most of their first start in fsync (bench/README.md,
        "Scale")."""
        files.private_dir(self.directory)  # 0700 dirs, 0600 files (bridge/files.py)
        data = json.dumps(dataclasses.asdict(device))
        files.write_private(self.device_path, data, durable=False)

    def forget_device(self) -> None:
        self.device_path.unlink(missing_ok=True)

    def load_outbound(self) -> list[dict[str, Any]]:
        return _load_jsonl(self.outbound_path, "outbound log")

    def append_outbound(self, entry: Mapping[str, Any]) -> None:
        files.private_dir(self.directory)
        files.append_private(self.outbound_path, json.dumps(entry, ensure_ascii=False) + "\n")

    def load_lids(self) -> dict[str, str]:
        """LID digits → E.164 phone, as linked so far."""
        try:
            return {e["lid"]: e["phone"] for e in _load_jsonl(self.lids_path, "LID store")}
        except (KeyError, TypeError) as exc:
            raise EngineError(f"sim LID store {self.lids_path} is corrupt: {exc!r}") from exc

    def append_lid(self, lid: str, phone: str) -> None:
        files.private_dir(self.directory)
        files.append_private(self.lids_path, json.dumps({"lid": lid, "phone": phone}) + "\n")


def _load_jsonl(path: Path, what: str) -> list[Any]:
    if not path.exists():
        return []
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except ValueError as exc:
            raise EngineError(f"sim {what} {path} line {number} is corrupt: {exc}") from exc
    return entries
