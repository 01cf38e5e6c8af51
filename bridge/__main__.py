"""Command line (the contract is docs/operations.md, "Command line"):

    python -m bridge run -c CONFIG
    python -m bridge migrate -c CONFIG
    python -m bridge check-config -c CONFIG
    python -m bridge generate-registration -c CONFIG -o FILE
    python -m bridge migrate-devices -c CONFIG
    python -m bridge demo

Expected failures (bad config, unreachable database, port in use) print one clear
line and exit 1; only a bug prints a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.config import Config, check_config, load_config
from bridge.errors import BridgeError, ConfigError
from bridge.logs import Redactor, configure_logging

if TYPE_CHECKING:
    from bridge.db.database import Database
    from bridge.db.sim_network import SimNetworkRepository
    from bridge.whatsapp.sim_store import SimSessionStore

DEFAULT_CONFIG = "config.yaml"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bridge",
        description="zapbridge: WhatsApp customer tickets served from Slack and Matrix threads.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.add_argument(
            "-c", "--config", default=DEFAULT_CONFIG, help="config file (default: config.yaml)"
        )
        return cmd

    add("run", "run the bridge (the default command)")
    add("migrate", "apply database migrations and exit")
    add("check-config", "validate the config; print every problem with its line; exit 1 on error")
    add(
        "migrate-devices",
        "copy SQLite whatsmeow device stores, pairing records and sim files into the database",
    )
    reg = add("generate-registration", "write the Matrix appservice registration YAML")
    reg.add_argument("-o", "--output", required=True, help="registration file to write")
    demo = sub.add_parser(
        "demo",
        help="run everything locally: Synapse, the bridge, a simulated WhatsApp customer",
        description="Start a local Synapse and the bridge with the simulated WhatsApp engine, "
        "play a short customer conversation and print a transcript. Needs the demo extra "
        "(pip install -e '.[demo]').",
    )
    demo.add_argument(
        "--data-dir", default="zapbridge-demo", help="where the demo keeps its state (reused)"
    )
    demo.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: Ctrl-C)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if not args_list or (args_list[0].startswith("-") and args_list[0] not in ("-h", "--help")):
        args_list.insert(0, "run")
    args = parser.parse_args(args_list)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    except BridgeError as exc:
        print(f"error: {Redactor()(exc.explanation)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        return _demo(Path(args.data_dir), args.duration)
    path = Path(args.config)
    if args.command == "check-config":
        return _check_config(path)
    if args.command == "generate-registration":
        return _generate_registration(path, Path(args.output))
    config = load_config(path)
    _setup_logging(config)
    if args.command == "migrate":
        applied = asyncio.run(_migrate(config))
        print(f"applied migrations: {', '.join(map(str, applied))}" if applied else "up to date")
        return 0
    if args.command == "migrate-devices":
        for line in asyncio.run(_migrate_devices(config)):
            print(line)
        return 0
    from bridge.app import Bridge

    asyncio.run(Bridge(config).run())
    return 0


def _demo(directory: Path, duration: float | None) -> int:
    import importlib.util

    if importlib.util.find_spec("synapse") is None:
        raise BridgeError(
            "the demo runs a local Synapse: install the demo extra first (pip install -e '.[demo]')"
        )
    from bridge.demo import run_demo

    asyncio.run(run_demo(directory, duration=duration))
    return 0


def _check_config(path: Path) -> int:
    report = check_config(path)
    for problem in report.warnings:
        print(f"warning: {problem}")
    for problem in report.errors:
        print(f"error: {problem}")
    if report.errors:
        return 1
    print(f"{path}: ok")
    return 0


def _generate_registration(config_path: Path, output: Path) -> int:
    from bridge.matrix.registration import write_registration

    before = _read_or_none(config_path)
    write_registration(config_path, output)
    if _read_or_none(config_path) != before:
        print(f"wrote generated tokens into {config_path} (now mode 0600: it holds them)")
    print(f"wrote {output} (mode 0600)")
    return 0


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _setup_logging(config: Config) -> None:
    configure_logging(
        level=config.logging.level,
        fmt=config.logging.format,
        redactor=Redactor(config.secrets()),
    )
    logging.getLogger("bridge").debug("logging configured")


async def _migrate(config: Config) -> list[int]:
    from bridge.db.database import Database
    from bridge.db.migrate import migrate

    db = await Database.connect(config.database.resolved_url)
    try:
        return await migrate(db)
    finally:
        await db.close()


async def _migrate_devices(config: Config) -> list[str]:
    from bridge.db.database import Database
    from bridge.db.migrate import migrate

    db = await Database.connect(config.database.resolved_url)
    try:
        await migrate(db)
        url = config.database.resolved_url
        return await move_devices(config, db, open_whatsmeow=lambda: _open_whatsmeow_tables(url))
    finally:
        await db.close()


def _open_whatsmeow_tables(url: str) -> None:
    """Let whatsmeow create (or upgrade) its tables in ``url``: neonize's static
    ``GetAllDevices`` opens the store, which runs whatsmeow's upgrades; no client."""
    from bridge.whatsapp.device_files import stored_devices

    stored_devices(url)


async def move_devices(
    config: Config, db: Database, *, open_whatsmeow: Callable[[], None]
) -> list[str]:
    """``migrate-devices`` (docs/cluster.md, "Device stores"): each whatsmeow
    session's SQLite store and pairing record, and each sim session's files, copied
    into ``db``; idempotent. ``open_whatsmeow`` lets whatsmeow create its tables in
    ``db`` first. Returns what it did, one line each."""
    from bridge.db.devices import DevicePairingRepository
    from bridge.db.sim_network import SimNetworkRepository
    from bridge.db.whatsmeow_copy import copy_store
    from bridge.whatsapp.device_files import DeviceFiles
    from bridge.whatsapp.engine import SessionSpec
    from bridge.whatsapp.sim_store import SimSessionStore

    lines: list[str] = []
    pairings = DevicePairingRepository(db)
    whatsmeow = [s for s in config.sessions if config.engine_of(s) == "whatsmeow"]
    stores = []
    for session in whatsmeow:
        spec = SessionSpec(
            key=session.key,
            company=session.company_id,
            name=session.name,
            device_dir=config.data_path / "devices" / session.company_id / session.name,
        )
        files = DeviceFiles(spec)
        if files.sqlite.exists():
            stores.append(files)
    if stores and db.dialect != "postgres":
        raise BridgeError(
            "migrate-devices copies whatsmeow device stores into PostgreSQL; this config's "
            "database is SQLite, where they stay files in data_dir (nothing to move)"
        )
    if stores:
        await asyncio.to_thread(open_whatsmeow)
    for files in stores:
        key = files.spec.key
        result = await copy_store(db, files.sqlite)
        if not result.devices:
            lines.append(f"{key}: whatsmeow store {files.sqlite.name} holds no device; skipped")
            continue
        if result.copied:
            lines.append(
                f"{key}: whatsmeow device {result.devices[0]} copied "
                f"({result.rows} rows in {result.tables} tables)"
            )
        else:
            lines.append(f"{key}: whatsmeow device {result.devices[0]} already in the database")
        record = await asyncio.to_thread(files.read)
        jid, lid = (record.jid, record.lid) if record else (result.devices[0], None)
        if await pairings.add_missing(key, jid=jid, lid=lid, engine="whatsmeow", now=time.time()):
            lines.append(f"{key}: pairing record {jid} stored")
        await asyncio.to_thread(files.record.unlink, missing_ok=True)
    network = SimNetworkRepository(db)
    for session in config.sessions:
        if config.engine_of(session) != "sim":
            continue
        store = SimSessionStore(config.data_path / "sim" / session.company_id / session.name)
        lines += await _move_sim_files(session.key, store, network)
    if config.whatsapp.sim.network != "database" and any("(sim)" in line for line in lines):
        lines.append("set whatsapp.sim.network: database to use the copied sim network")
    return lines or ["nothing to move: no SQLite whatsmeow stores or sim files in data_dir"]


async def _move_sim_files(
    key: str, store: SimSessionStore, network: SimNetworkRepository
) -> list[str]:
    """One sim session's device, outbound log and LID links into the network."""
    device = store.load_device()  # EngineError (a BridgeError) when a file is corrupt
    outbound, lids = store.load_outbound(), store.load_lids()
    if device is None and not outbound and not lids:
        return []
    done: list[str] = []
    if device is not None:
        there = await network.device(key) is not None
        stored = await network.pair(
            key, phone=device.phone, paired_at=device.paired_at, auto=device.auto, replace=False
        )
        done.append(f"device {stored.phone}" + (" (there already)" if there else ""))
    known = {str(entry["id"]) for entry in await network.outbound(key)}
    new = [entry for entry in outbound if str(entry["id"]) not in known]
    for entry in new:
        await network.log_outbound(key, entry)
    before = await network.lids(key)
    for lid, phone in lids.items():
        await network.link_lid(key, lid=lid, phone=phone)
    done.append(f"{len(new)} of {len(outbound)} outbound entries")
    done.append(f"{len(set(lids) - set(before))} of {len(lids)} LID links")
    return [f"{key} (sim): copied {', '.join(done)}"]


if __name__ == "__main__":
    sys.exit(main())
