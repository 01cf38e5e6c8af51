"""What every benchmark shares: databases per run, the null frontend, figures output.

Each benchmark prints one JSON object per line (``{"bench": ..., ...}``) on stdout,
then a readable table. Nothing here asserts a timing.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.config import CompanyConfig, SessionConfig
from bridge.core.frontend import Author, ChatAddress, Frontend, Posted, TicketCard
from bridge.db.database import Database
from bridge.model import AckStatus, Content, Text

PG_URL = os.environ.get("ZAPBRIDGE_TEST_PG", "postgresql://postgres@127.0.0.1/test")
DB_CHOICES = ("sqlite", "postgres", "both")
ATTENDANT = "U0BOB"
MATRIX_ATTENDANT = "bob"  # localpart of the attendant registered on the local Synapse
MATRIX_DOMAIN = "localhost"


@dataclass(frozen=True)
class MatrixEndpoints:
    """Where a bridge finds its homeserver and where the homeserver finds the bridge."""

    hs_port: int
    as_port: int
    as_token: str
    hs_token: str

    @property
    def hs_address(self) -> str:
        return f"http://127.0.0.1:{self.hs_port}"


def engines(choice: str) -> list[str]:
    return ["sqlite", "postgres"] if choice == "both" else [choice]


# --- databases -------------------------------------------------------------------


@dataclass(frozen=True)
class BenchDatabase:
    """Where one run keeps its data: a SQLite file or a fresh PostgreSQL schema."""

    engine: str
    url: str  # for a bridge subprocess's config (the schema rides in search_path)
    schema: str | None

    async def connect(self) -> Database:
        if self.schema is None:
            return await Database.connect(self.url)
        return await Database.connect(PG_URL, schema=self.schema)


@contextlib.asynccontextmanager
async def bench_database(engine: str, directory: Path) -> AsyncIterator[BenchDatabase]:
    """A database for one run, removed afterwards (the PostgreSQL schema dropped)."""
    if engine == "sqlite":
        yield BenchDatabase("sqlite", f"sqlite:{directory / 'bench.db'}", None)
        return
    schema = f"zapbridge_bench_{secrets.token_hex(5)}"
    admin = await Database.connect(PG_URL, schema=schema)  # creates the schema
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield BenchDatabase("postgres", f"{PG_URL}{sep}search_path={schema}", schema)
    finally:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


def temp_dir(prefix: str) -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix=prefix)


# --- the null frontend --------------------------------------------------------------


@dataclass
class NullFrontend(Frontend):
    """A sink that keeps only what a benchmark needs: ids, the texts it was given and
    when (``time.monotonic``), and each ticket's thread. Every call succeeds."""

    name: str = "null"
    posted: dict[str, float] = field(default_factory=dict)  # text → arrival (monotonic)
    posts: int = 0
    threads: dict[int, ChatAddress] = field(default_factory=dict)  # ticket id → thread
    _ids: int = 0

    def _next(self) -> str:
        self._ids += 1
        return f"${self._ids}"

    def serves_session(self, session: SessionConfig) -> bool:
        return True

    def serves_ops(self, company: CompanyConfig) -> bool:
        return False

    async def ensure_control_room(self, company: CompanyConfig, session: SessionConfig) -> str:
        return f"!{company.id}-{session.name}"

    async def ensure_ops_room(self, company: CompanyConfig) -> str:
        return f"!{company.id}-ops"

    async def create_thread(self, room: str, card: TicketCard, *, txn_id: str) -> str:
        root = self._next()
        self.threads[card.ticket_id] = ChatAddress(room, root)
        return root

    async def update_card(self, place: ChatAddress, card: TicketCard) -> None:
        return None

    async def post(
        self,
        place: ChatAddress,
        author: Author,
        content: Content,
        *,
        reply_to: str | None,
        txn_id: str,
    ) -> Posted:
        self.posts += 1
        if isinstance(content, Text):
            self.posted[content.body] = time.monotonic()
        return Posted((self._next(),))

    async def react(
        self, place: ChatAddress, author: Author, *, target: str, emoji: str, txn_id: str
    ) -> str | None:
        return self._next()

    async def edit(
        self, place: ChatAddress, author: Author, *, target: str, new: Text, txn_id: str
    ) -> str | None:
        return self._next()

    async def delete(self, place: ChatAddress, author: Author, *, target: str) -> None:
        return None

    async def mark_receipt(
        self, place: ChatAddress, author: Author, *, target: str, status: AckStatus
    ) -> None:
        return None

    async def notice(self, place: ChatAddress, text: str, *, txn_id: str) -> str:
        return self._next()

    async def post_image(
        self, place: ChatAddress, *, data: bytes, filename: str, caption: str, replaces: str | None
    ) -> str:
        return self._next()

    async def set_topic(self, room: str, text: str) -> None:
        return None


# --- configs -------------------------------------------------------------------------


def session_names(count: int) -> list[str]:
    return [f"s{n:04d}" for n in range(count)]


def customer_phone(n: int) -> str:
    """Distinct Brazilian mobiles in normalised E.164 (``+5511 9 xxxx xxxx``)."""
    return f"+55119{n:08d}"


def bridge_config(
    *,
    db_url: str,
    port: int,
    sessions: int,
    stagger_ms: int = 0,
    slack: dict[str, str] | None = None,
    matrix: MatrixEndpoints | None = None,
    log_level: str = "WARNING",
    outbox: str = "{max_attempts: 40, base_delay_seconds: 0.2, max_delay_seconds: 2}",
    group_commit_ms: float | None = None,
) -> str:
    """A config YAML: one company, ``sessions`` sim sessions (auto paired), no
    greeting, sends unthrottled (``send_per_minute`` far above any bench rate);
    ``group_commit_ms`` None keeps the default."""
    grouping = "" if group_commit_ms is None else f", group_commit_ms: {group_commit_ms:g}"
    lines = [
        f'database: {{url: "{db_url}"{grouping}}}',
        "data_dir: data",
        f"http: {{host: 127.0.0.1, port: {port}}}",
        f"logging: {{level: {log_level}}}",
        "whatsapp:",
        "  engine: sim",
        "  send_per_minute: 6000000",
        "  send_burst: 100000",
        f"  start_stagger_ms: {stagger_ms}",
        "  reconnect: {initial_seconds: 0.2, max_seconds: 2, stable_seconds: 5}",
        "  sim: {auto_pair: true}",
        f"outbox: {outbox}",
        "tickets: {reopen_window_minutes: 120}",
    ]
    if slack:
        lines += [
            "slack:",
            "  enabled: true",
            "  mode: socket",
            f"  bot_token: {slack['bot_token']}",
            f"  app_token: {slack['app_token']}",
            f"  signing_secret: {slack['signing_secret']}",
            f'  api_url: "{slack["api_url"]}"',
            "  per_channel_per_second: 10000",  # the fake has no limit: measure the bridge
            "  per_channel_burst: 1000",
        ]
    if matrix:
        lines += _matrix_lines(matrix)
    attendants = [ATTENDANT] + ([f"@{MATRIX_ATTENDANT}:{MATRIX_DOMAIN}"] if matrix else [])
    lines += [
        "companies:",
        "  - id: acme",
        "    name: ACME Support",
        '    admins: ["U0ADMIN"]',
        f"    attendants: {json.dumps(attendants)}",
        "    sessions:",
    ]
    for name in session_names(sessions):
        lines.append(f"      - name: {name}")
        if slack:
            lines.append(f"        slack_channel: {channel_of(name)}")
        if matrix:
            lines.append("        matrix: true")
    return "\n".join(lines) + "\n"


def _matrix_lines(matrix: MatrixEndpoints) -> list[str]:
    return [
        f'homeserver: {{address: "{matrix.hs_address}", domain: {MATRIX_DOMAIN}}}',
        "appservice:",
        "  hostname: 127.0.0.1",
        f"  port: {matrix.as_port}",
        f'  address: "http://127.0.0.1:{matrix.as_port}"',
        f'  as_token: "{matrix.as_token}"',
        f'  hs_token: "{matrix.hs_token}"',
    ]


def channel_of(session: str) -> str:
    return f"C{session.upper()}"


# --- figures ---------------------------------------------------------------------------


def percentiles(samples: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99 in milliseconds (``samples`` in seconds)."""
    if not samples:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    if len(samples) == 1:
        value = round(samples[0] * 1000, 3)
        return {"p50_ms": value, "p95_ms": value, "p99_ms": value}
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "p50_ms": round(cuts[49] * 1000, 3),
        "p95_ms": round(cuts[94] * 1000, 3),
        "p99_ms": round(cuts[98] * 1000, 3),
    }


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory (VmRSS) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc status")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of another process (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def emit(record: dict[str, Any]) -> None:
    """One figure as a JSON line on stdout."""
    print(json.dumps(record, sort_keys=False), flush=True)


def table(records: Iterable[dict[str, Any]], columns: Sequence[str]) -> str:
    rows = [[_cell(r.get(c)) for c in columns] for r in records]
    widths = [max([len(c)] + [len(row[i]) for row in rows]) for i, c in enumerate(columns)]
    out = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)
