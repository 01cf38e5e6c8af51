"""Several bridge subprocesses on one PostgreSQL schema (``cluster.enabled``).

Used by ``bench.cluster_faults`` and ``bench.relay --instances``. Each instance is a
``BridgeProcess`` with a directory (config, ``data_dir``, logs) and HTTP port of its
own and a fixed ``cluster.instance_id`` (``i0``, ``i1``, …); all read the same
sessions, the same Slack fake (one Socket Mode connection each; the fake hands each
envelope to one of them) and the same schema. With ``roles``, each instance logs in
to PostgreSQL as a role of its own (``InstanceRoles``), so one instance's connections
can be cut while the others keep theirs.

``OwnershipWatch`` polls every instance's ``/health`` every 0.1 s and keeps when each
instance was first seen running a session (the session in its ``owned`` and
``CONNECTED`` in its ``sessions``): a session's takeover time is from the fault until
the first such sighting on another instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from bench.common import PG_URL, BenchDatabase
from bench.drive import SlackDriver
from bench.proc import BridgeProcess
from bridge.db.database import Database
from tests.fakes.slack import SlackFake


def cluster_config(instance: str, lease_seconds: int) -> str:
    return f"cluster: {{enabled: true, instance_id: {instance}, lease_seconds: {lease_seconds}}}\n"


def _url_as(user: str, schema: str) -> str:
    """``PG_URL`` logged in as ``user``, with the run's schema on the search path."""
    parts = urlsplit(PG_URL)
    host = parts.netloc.rsplit("@", 1)[-1]
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit(
        (parts.scheme, f"{user}@{host}", parts.path, f"{query}search_path={schema}", "")
    )


class InstanceRoles:
    """One PostgreSQL login role per instance, all acting as one group role (``ALTER
    ROLE … SET role``), so the tables the first instance creates serve every one.
    ``cut(n)`` terminates instance ``n``'s connections and refuses new ones
    (``NOLOGIN``) until ``restore(n)``. Needs the bench's superuser connection."""

    def __init__(self, database: BenchDatabase, count: int) -> None:
        assert database.schema is not None, "roles need PostgreSQL"
        self.schema = database.schema
        self.database = database
        tag = f"zb_{secrets.token_hex(4)}"
        self.group = tag
        self.names = [f"{tag}_i{n}" for n in range(count)]
        self.urls = [_url_as(name, self.schema) for name in self.names]
        self._admin: Database | None = None

    async def __aenter__(self) -> InstanceRoles:
        self._admin = await self.database.connect()
        await self._admin.execute(f"CREATE ROLE {self.group} NOLOGIN")
        await self._admin.execute(f'GRANT ALL ON SCHEMA "{self.schema}" TO {self.group}')
        for name in self.names:
            await self._admin.execute(f"CREATE ROLE {name} LOGIN IN ROLE {self.group}")
            await self._admin.execute(f"ALTER ROLE {name} SET role = '{self.group}'")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._admin is not None
        try:
            for name in self.names:
                await self._terminate(name)
            await self._admin.execute(f"DROP OWNED BY {self.group}, {', '.join(self.names)}")
            for name in [*self.names, self.group]:
                await self._admin.execute(f"DROP ROLE {name}")
        finally:
            await self._admin.close()

    async def _terminate(self, name: str) -> int:
        assert self._admin is not None
        rows = await self._admin.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", name
        )
        return len(rows)

    async def backends(self) -> list[int]:
        """The server processes serving the instances' connections."""
        assert self._admin is not None
        rows = await self._admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE usename = ANY($1::text[])", self.names
        )
        return [int(row["pid"]) for row in rows]

    async def cut(self, n: int) -> int:
        """Refuse instance ``n``'s new connections, then end its open ones; how many."""
        assert self._admin is not None
        await self._admin.execute(f"ALTER ROLE {self.names[n]} NOLOGIN")
        return await self._terminate(self.names[n])

    async def restore(self, n: int) -> None:
        assert self._admin is not None
        await self._admin.execute(f"ALTER ROLE {self.names[n]} LOGIN")


@dataclass
class Sighting:
    at: float  # time.monotonic() of the poll that saw it
    instance: str
    session: str


@dataclass
class OwnershipWatch:
    """Which sessions each instance runs, from its ``/health`` every ``every`` s."""

    members: list[Member]
    every: float = 0.1
    current: dict[str, frozenset[str]] = field(default_factory=dict)
    sightings: list[Sighting] = field(default_factory=list)
    sizes: list[tuple[float, str, int]] = field(default_factory=list)  # (at, instance, n)

    async def run(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as http:
            while True:  # cancelled when the run ends
                started = time.monotonic()
                for member in self.members:
                    await self._poll(http, member)
                await asyncio.sleep(max(0.0, self.every - (time.monotonic() - started)))

    async def _poll(self, http: aiohttp.ClientSession, member: Member) -> None:
        if not member.running:
            self.current[member.name] = frozenset()
            return
        try:
            async with http.get(f"{member.bridge.base}/health") as resp:
                body = await resp.json()
            statuses, owned = body["sessions"], body.get("owned", [])
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
            return  # not answering: keep the last view
        now = time.monotonic()
        running = frozenset(s for s in owned if statuses.get(s) == "CONNECTED")
        before = self.current.get(member.name, frozenset())
        for session in running - before:
            self.sightings.append(Sighting(now, member.name, session))
        if len(running) != len(before):
            self.sizes.append((now, member.name, len(running)))
        self.current[member.name] = running

    def owner_of(self) -> dict[str, str]:
        return {s: name for name, owned in self.current.items() for s in owned}

    def taken_over(
        self, sessions: Iterable[str], *, since: float, lost_by: str
    ) -> dict[str, float]:
        """Seconds from ``since`` until each session was first seen running on an
        instance other than ``lost_by`` (sessions not taken over yet are absent)."""
        wanted, found = set(sessions), {}
        for sighting in self.sightings:
            if (
                sighting.session in wanted
                and sighting.session not in found
                and sighting.at >= since
                and sighting.instance != lost_by
            ):
                found[sighting.session] = sighting.at - since
        return found

    def regained(self, instance: str, *, since: float) -> dict[str, float]:
        """When (monotonic) ``instance`` was first seen running each session after ``since``."""
        found: dict[str, float] = {}
        for sighting in self.sightings:
            if sighting.instance == instance and sighting.at >= since:
                found.setdefault(sighting.session, sighting.at)
        return found

    async def wait(self, predicate: Any, timeout: float) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while not predicate():  # noqa: ASYNC110 - the watch's polls change it
                await asyncio.sleep(self.every)


@dataclass
class Member:
    name: str
    index: int
    bridge: BridgeProcess
    running: bool = False

    async def start(self) -> None:
        await self.bridge.start()
        self.running = True

    def kill(self) -> None:
        self.running = False
        self.bridge.kill()

    async def stop(self) -> None:
        self.running = False
        await self.bridge.stop()


class BridgeCluster:
    """``count`` instances over one database; ``sessions``/``inbound``/``outbound``
    make it a drop-in for one ``BridgeProcess`` in ``bench.drive``'s drivers: customer
    messages go to the running instances in turn (a refused or unanswered post goes
    to the next one on the driver's retry)."""

    def __init__(
        self,
        directory: Path,
        *,
        urls: list[str],
        sessions: int,
        fake: SlackFake,
        lease_seconds: int,
        log_level: str = "WARNING",
    ) -> None:
        self.members = [
            Member(
                f"i{n}",
                n,
                BridgeProcess(
                    directory / f"i{n}",
                    db_url=url,
                    sessions=sessions,
                    fake=fake,
                    extra_config=cluster_config(f"i{n}", lease_seconds),
                    log_level=log_level,
                ),
            )
            for n, url in enumerate(urls)
        ]
        self.sessions = self.members[0].bridge.sessions
        self.keys = [f"acme/{s}" for s in self.sessions]
        self.lease_seconds = lease_seconds
        self.watch = OwnershipWatch(self.members)
        self._turn = 0

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[BridgeCluster]:
        """Every instance started together, sessions spread (see ``balanced``)."""
        watcher = asyncio.create_task(self.watch.run())
        try:
            await asyncio.gather(*(m.start() for m in self.members))
            await self.wait_balanced()
            yield self
        finally:
            for member in self.members:
                member.running = False
            await asyncio.gather(*(m.bridge.stop() for m in self.members))
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    def balanced(self) -> bool:
        """Every session runs on exactly one running instance, none above the fair share."""
        live = [m for m in self.members if m.running]
        owned = [self.watch.current.get(m.name, frozenset()) for m in live]
        share = math.ceil(len(self.keys) / max(1, len(live)))
        every = set().union(*owned) if owned else set()
        return (
            every == set(self.keys)
            and sum(map(len, owned)) == len(self.keys)
            and max(map(len, owned)) <= share
        )

    async def wait_balanced(self, timeout: float = 120) -> float:  # noqa: ASYNC109
        started = time.monotonic()
        await self.watch.wait(self.balanced, timeout)
        return time.monotonic() - started

    async def leaders(self) -> list[str]:
        """The running instances whose ``zapbridge_cluster_leader`` gauge is 1."""
        found = []
        for member in self.live():
            http = member.bridge.http
            if http is None:
                continue
            try:
                async with http.get(f"{member.bridge.base}/metrics") as resp:
                    text = await resp.text()
            except (aiohttp.ClientError, TimeoutError):
                continue
            if f'zapbridge_cluster_leader{{instance="{member.name}"}} 1.0' in text:
                found.append(member.name)
        return found

    def live(self) -> list[Member]:
        return [m for m in self.members if m.running]

    def _next(self) -> BridgeProcess:
        live = self.live() or self.members
        self._turn += 1
        return live[self._turn % len(live)].bridge

    async def inbound(self, session: str, body: dict[str, Any]) -> int:
        bridge = self._next()
        if bridge.http is None:
            return 0
        return await bridge.inbound(session, body)

    async def outbound(self, session: str) -> list[dict[str, Any]]:
        """The shared outbound log, read from a running instance."""
        for _ in range(len(self.members) * 3):
            bridge = self._next()
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, AssertionError):
                return await bridge.outbound(session)
            await asyncio.sleep(0.2)
        raise RuntimeError(f"no instance answers /sim outbound of {session}")


@contextlib.asynccontextmanager
async def cluster_sink(
    directory: Path,
    database: BenchDatabase,
    *,
    instances: int,
    sessions: int,
    tickets: int,
    lease_seconds: int,
    roles: bool,
    log_level: str = "WARNING",
) -> AsyncIterator[tuple[BridgeCluster, SlackDriver, InstanceRoles | None]]:
    """A running cluster with the Slack fake, and a driver whose tickets are open."""
    async with contextlib.AsyncExitStack() as stack:
        fake = await stack.enter_async_context(SlackFake())
        logins = (
            await stack.enter_async_context(InstanceRoles(database, instances)) if roles else None
        )
        urls = logins.urls if logins is not None else [database.url] * instances
        cluster = BridgeCluster(
            directory,
            urls=urls,
            sessions=sessions,
            fake=fake,
            lease_seconds=lease_seconds,
            log_level=log_level,
        )
        driver = SlackDriver(cluster, fake, tickets=tickets)  # type: ignore[arg-type]
        await stack.enter_async_context(cluster.running())
        await driver.open_tickets()
        yield cluster, driver, logins
