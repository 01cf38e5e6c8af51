"""Command line (the contract is docs/operations.md, "Command line"):

    python -m bridge run -c CONFIG
    python -m bridge migrate -c CONFIG
    python -m bridge check-config -c CONFIG
    python -m bridge generate-registration -c CONFIG -o FILE
    python -m bridge demo

Expected failures (bad config, unreachable database, port in use) print one clear
line and exit 1; only a bug prints a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bridge.config import Config, check_config, load_config
from bridge.errors import BridgeError, ConfigError
from bridge.logs import Redactor, configure_logging

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


if __name__ == "__main__":
    sys.exit(main())
