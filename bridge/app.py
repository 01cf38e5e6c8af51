"""Composition root: builds every component, starts them in dependency order and
stops them in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import signal
from collections.abc import Sequence

from bridge import files
from bridge.app_cluster import ClusterWiring
from bridge.clock import Clock, SystemClock
from bridge.cluster.identity import instance_id
from bridge.config import CloudConfig, Config
from bridge.core.cluster_sessions import ClusterSessions
from bridge.core.commands import CommandRegistry
from bridge.core.config_sync import sync_config
from bridge.core.dead_letters import DeadLetters
from bridge.core.deliveries import DeliveryContext, FrontendDeliveries
from bridge.core.desk import TicketDesk
from bridge.core.downstream import Downstream
from bridge.core.frontend import Frontend
from bridge.core.health import Health, probe_writes
from bridge.core.idle_tickets import IdleTickets
from bridge.core.media_cleanup import MediaCleanup
from bridge.core.menu_timeouts import MenuTimeouts
from bridge.core.ops import OpsNotifier
from bridge.core.ops_sink import OpsRow, OpsRowCodec, OutboxOpsSink
from bridge.core.outbox import OutboxWorker
from bridge.core.outgoing import WHATSAPP, Outgoing
from bridge.core.presence import WHATSAPP_PRESENCE
from bridge.core.presence_deliveries import PresenceDeliveries
from bridge.core.quarantine import Quarantine
from bridge.core.queue_tickets import QueueTickets
from bridge.core.relay import Relay
from bridge.core.retention import Retention
from bridge.core.status_store import DatabaseStatusStore, FencedStatusStore
from bridge.core.tickets import TicketService
from bridge.core.whatsapp_deliveries import WhatsAppDeliveries
from bridge.db import Repositories
from bridge.db.database import Database
from bridge.db.instance_lock import take_instance_lock
from bridge.db.migrate import migrate
from bridge.errors import BridgeError
from bridge.journal import Journal, JournalStore, Limits
from bridge.media_store import MediaStore
from bridge.metrics import Metrics
from bridge.web import WebServer
from bridge.whatsapp.engine import Engine, EngineEvent, SessionSpec, session_key
from bridge.whatsapp.engine_router import one_engine
from bridge.whatsapp.event_codec import EventCodec
from bridge.whatsapp.sessions import SessionManager
from bridge.whatsapp.sim import SimEngine
from bridge.whatsapp.status import StatusStore

log = logging.getLogger("bridge.app")

DAY_SECONDS = 86_400.0


class Bridge(ClusterWiring):
    """The running bridge. ``start`` then ``stop``; or ``run`` until a signal.

    Tests pass a clock, frontends and an open database (which the bridge then does
    not close); production builds them from the config.
    """

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        frontends: Sequence[Frontend] | None = None,
        database: Database | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.metrics = Metrics()
        if frontends is None:
            frontends = build_frontends(config, clock=self.clock)
        self.frontends: dict[str, Frontend] = {fe.name: fe for fe in frontends}
        self.engines: dict[str, Engine] = {}  # by engine name; see _build_engine
        self.db: Database | None = database
        self._own_db = database is None
        self._stack = contextlib.AsyncExitStack()
        self._started = False

    @property
    def session_specs(self) -> list[SessionSpec]:
        url = self.config.database.resolved_url
        pg_url = url if url.startswith(("postgres://", "postgresql://")) else None
        devices = self.config.data_path / "devices"  # resolved once, not per session
        return [
            SessionSpec(
                key=session_key(company.id, session.name),
                company=company.id,
                name=session.name,
                device_dir=devices / company.id / session.name,
                database_url=pg_url,
            )
            for company in self.config.companies
            for session in company.sessions
        ]

    async def start(self) -> None:
        """Start every component in dependency order; on failure, undo what started."""
        try:
            await self._start_storage()
            self._build_core()
            await self._start_services()
        except BaseException:
            await self._stack.aclose()
            raise

    async def _start_storage(self) -> None:
        # data_dir holds device stores and media: 0700, its files 0600 (bridge/files.py)
        try:
            await asyncio.to_thread(files.tighten_tree, self.config.data_path)
        except OSError as exc:
            raise BridgeError(f"cannot use data_dir {exc.filename}: {exc.strerror}") from exc
        if self.db is None:
            self.db = await Database.connect(self.config.database.resolved_url)
        if self._own_db:
            self._stack.push_async_callback(self.db.close)
        # one bridge per database unless they share it (docs/cluster.md)
        lock = await take_instance_lock(
            self.db, exclusive=self.exclusive_database, instance=instance_id(self.config.cluster)
        )
        self._stack.push_async_callback(lock.release)
        applied = await migrate(self.db)
        if applied:
            log.info("applied migrations %s", ", ".join(map(str, applied)))
        self.repos = Repositories.over(self.db)
        self.session_ids = await sync_config(self.config, self.repos)

    def _build_core(self) -> None:
        config, clock, repos = self.config, self.clock, self.repos
        wa = config.whatsapp
        self._build_ownership(self.db_required, [s.key for s in self.session_specs])
        store: StatusStore = DatabaseStatusStore(repos.sessions, self.session_ids)
        if self.cluster is not None:  # a status is written only under the lease
            store = FencedStatusStore(store, self.cluster)
        self.sessions = SessionManager(
            None,
            specs=self.session_specs,
            store=store,
            clock=clock,
            rng=self.rng,
            metrics=self.metrics,
            reconnect_initial=wa.reconnect.initial_seconds,
            reconnect_max=wa.reconnect.max_seconds,
            stable_seconds=wa.reconnect.stable_seconds,
            stagger_seconds=wa.start_stagger_ms / 1000,
            send_per_minute=wa.send_per_minute,
            send_burst=wa.send_burst,
            presence_per_minute=wa.presence_per_minute,
            presence_burst=wa.presence_burst,
        )
        self.engine = self._build_engine()
        self.sessions.attach_engine(self.engine)
        if self.cluster is not None:  # nothing is sent without the lease
            self.sessions.fence_with(self.cluster.confirm)
        self.tickets = TicketService(
            repos, config, session_ids=self.session_ids, clock=clock, metrics=self.metrics
        )
        self.media = MediaStore(config.data_path / "media", clock=clock)
        self.outbox = OutboxWorker(
            repos.outbox,
            clock=clock,
            rng=self.rng,
            max_attempts=config.outbox.max_attempts,
            base_delay=config.outbox.base_delay_seconds,
            max_delay=config.outbox.max_delay_seconds,
            metrics=self.metrics,
            claims=self._outbox_claims(self.db_required),
            leader=self.ownership.is_leader,
        )
        self.ops_sink = OutboxOpsSink(
            config, repos.outbox, self.outbox, frontends=self.frontends, clock=clock
        )
        self.notifier = OpsNotifier(config, self.ops_sink, clock=clock)
        self.outgoing = Outgoing(
            config,
            repos,
            outbox=self.outbox,
            frontends=self.frontends,
            session_ids=self.session_ids,
            clock=clock,
        )
        self.queues = QueueTickets(
            repos,
            config,
            tickets=self.tickets,
            session_ids=self.session_ids,
            clock=clock,
            metrics=self.metrics,
        )
        self.desk = TicketDesk(
            self.db_required, self.tickets, self.outgoing, self.outbox, queues=self.queues
        )
        self.menu_timeouts = MenuTimeouts(
            config, repos, queues=self.queues, outgoing=self.outgoing, clock=clock
        )
        self.idle_tickets = IdleTickets(
            config,
            repos,
            tickets=self.tickets,
            desk=self.desk,
            notifier=self.notifier,
            session_ids=self.session_ids,
            clock=clock,
        )
        self.cluster_sessions = ClusterSessions(
            repos.sessions,
            self.leases,
            keys=[s.key for s in self.session_specs],
            local=self.sessions,
            ownership=self.ownership,
        )
        self.commands = CommandRegistry(
            config,
            tickets=self.desk,
            sessions=self.sessions,
            login_origins=self.ops_sink,
            cluster=self.cluster_sessions if self.cluster is not None else None,
        )
        self.relay = Relay(
            config,
            repos,
            tickets=self.tickets,
            outgoing=self.outgoing,
            commands=self.commands,
            session_ids=self.session_ids,
            clock=clock,
            metrics=self.metrics,
            media=self.media,
            quarantine=Quarantine(
                repos.quarantine, ops=self.notifier, metrics=self.metrics, clock=clock
            ),
        )
        self.downstream = Downstream(self.relay, self.notifier)
        self._build_journals()
        self._connect_paths()

    def _build_journals(self) -> None:
        """What the database refuses is kept under data_dir/journal and replayed in
        order (bridge/journal): WhatsApp events, and ops rows."""
        base = self.config.data_path / "journal"
        self.event_journal: Journal[EngineEvent] = Journal(
            "whatsapp",
            JournalStore(base / "whatsapp"),
            EventCodec(),
            handler=self.downstream,
            probe=functools.partial(probe_writes, self.db_required),
            clock=self.clock,
            rng=self.rng,
            metrics=self.metrics,
            on_failed=self.sessions.set_aside_kept,
            listener=self.notifier,
        )
        self.sessions.keep_refused_in(self.event_journal)
        self.ops_journal: Journal[OpsRow] = Journal(
            "ops",
            JournalStore(base / "ops"),
            OpsRowCodec(),
            handler=self.ops_sink.enqueue,
            probe=functools.partial(probe_writes, self.db_required),
            clock=self.clock,
            rng=self.rng,
            metrics=self.metrics,
            # an alert replayed twice after a crash is noise; nobody waits on an alert
            limits=Limits(batch_records=1, answer_seconds=None),
        )
        self.ops_sink.keep_refused_in(self.ops_journal)

    def _connect_paths(self) -> None:
        ctx = DeliveryContext(
            config=self.config,
            repos=self.repos,
            tickets=self.tickets,
            session_ids=self.session_ids,
            clock=self.clock,
            metrics=self.metrics,
            download=self.sessions.download,
            media=self.media,
        )
        self.outbox.register(WHATSAPP, WhatsAppDeliveries(ctx, self.sessions))
        self.outbox.register(WHATSAPP_PRESENCE, PresenceDeliveries(ctx, self.sessions))
        for name, frontend in self.frontends.items():
            deliveries = FrontendDeliveries(ctx, frontend)
            self.outbox.register(name, deliveries, resumed=deliveries.resumed)
        self.outbox.on_dead_letter(
            DeadLetters(
                self.repos, tickets=self.tickets, outgoing=self.outgoing, notifier=self.notifier
            )
        )
        self.outbox.on_backlog(self._on_backlog)
        retention = Retention(self.repos)
        prune_events = self._leader_only(retention.prune_processed_events)
        self.outbox.on_prune("processed event ids", prune_events)
        prune_quarantine = self._leader_only(retention.prune_quarantined_events)
        self.outbox.on_prune("quarantined events", prune_quarantine)
        if self.cluster is not None:  # killed instances' rows (docs/cluster.md)
            forget = functools.partial(self.leases.forget_instances, silent_for=DAY_SECONDS)
            self.outbox.on_prune("instances gone", self._leader_only(lambda _now: forget()))
        cleanup = MediaCleanup(
            self.media, self.repos.messages, retention_seconds=self.config.media.retention_seconds
        )
        self.outbox.on_prune("media files", cleanup.prune)
        self.sessions.add_listener(self.notifier.on_status)
        self.sessions.set_downstream(self.downstream)

    async def _on_backlog(self, pending: int) -> None:
        """The cluster-wide backlog is told by the leader only."""
        if self.ownership.is_leader():
            await self.notifier.on_backlog(pending)

    async def _start_services(self) -> None:
        self._stack.push_async_callback(self.engine.close)
        await self.ops_journal.start()  # before anything may post an alert
        self._stack.push_async_callback(self.ops_journal.stop)
        self._stack.push_async_callback(self.notifier.stop)
        health = Health(
            self.repos.outbox,
            frontends=list(self.frontends.values()),
            journal_problems=[self.event_journal.problems, self.ops_journal.problems],
        )
        clustered = self.cluster is not None
        self.web = WebServer(
            host=self.config.http.host,
            port=self.config.http.port,
            metrics=self.metrics,
            statuses=self.cluster_sessions.statuses
            if clustered
            else lambda: {k: str(v) for k, v in self.sessions.statuses().items()},
            dead_letters=health.dead_letters,
            problems=health.problems,
            cluster=self.cluster_sessions.facts if clustered else None,
        )
        self._mount_sim_routes(self.web)
        self._mount_cloud_routes(self.web)
        self._mount_slack_routes(self.web)
        await self.web.start()
        self._stack.push_async_callback(self.web.stop)
        await self._start_wakeups()
        await self.outbox.start()  # resumes what a previous run left pending
        self._stack.push_async_callback(self.outbox.stop)
        for name, frontend in self.frontends.items():
            await frontend.start(self.relay)
            self._stack.push_async_callback(frontend.stop)
            await self.outgoing.request_rooms(name)
        self._gate_matrix_catch_up()
        # Deliveries stop before the frontends they use close (and again, harmlessly,
        # where the outbox was started).
        self._stack.push_async_callback(self.outbox.stop)
        self.outbox.wake()
        await self.event_journal.start()  # what an earlier run kept goes before new events
        self._stack.push_async_callback(self.event_journal.stop)
        if self.cluster is None:
            await self.idle_tickets.start()  # its timers are columns: a restart resumes them
        self._stack.push_async_callback(self.idle_tickets.stop)
        if self.cluster is None:
            await self.menu_timeouts.start()  # deadlines are columns: a restart resumes them
        self._stack.push_async_callback(self.menu_timeouts.stop)
        await self._start_sessions()
        self._started = True
        log.info(
            "zapbridge started: %d sessions, frontends: %s",
            len(self.session_specs),
            ", ".join(self.frontends) or "none",
        )

    async def _start_sessions(self) -> None:
        """Alone: every session; in a cluster, the sessions owned (bridge/app_cluster.py)."""
        if self.cluster is None:
            await self.sessions.start()
            self._stack.push_async_callback(self._stop_sessions)
            return
        await self._start_owned_sessions(self.cluster, self._stop_sessions)

    async def _stop_sessions(self) -> None:
        await self.sessions.stop(grace_seconds=self.config.shutdown_timeout_seconds / 2)

    @property
    def exclusive_database(self) -> bool:
        """Whether this bridge must be the only one on its database: always on
        SQLite; on PostgreSQL unless several instances share it (docs/cluster.md)."""
        return not self.config.cluster.enabled

    @property
    def db_required(self) -> Database:
        if self.db is None:
            raise BridgeError("the database is not open")
        return self.db

    async def stop(self) -> None:
        """Stop every component in reverse order, within the configured time."""
        timeout = self.config.shutdown_timeout_seconds
        try:
            await asyncio.wait_for(self._stack.aclose(), timeout)
        except TimeoutError:
            log.error("shutdown took longer than %s s; stopping anyway", timeout)
        if self._started:  # a refused start says so in one line (bridge/__main__.py)
            log.info("zapbridge stopped")
        self._started = False

    async def run(self) -> None:
        """Start, wait for SIGTERM/SIGINT, stop."""
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        try:
            await self.start()
            await stopping.wait()
            log.info("signal received, stopping")
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.stop()

    def _build_engine(self) -> Engine:
        """One engine per engine the sessions use (``sessions[].engine``, else
        ``whatsapp.engine``); with several, a router sends each session's calls to its
        own (bridge/whatsapp/engine_router.py)."""
        config = self.config
        engine_of = {s.key: config.engine_of(s) for s in config.sessions}
        names = sorted(set(engine_of.values())) or [config.whatsapp.engine]
        self.engines = {name: self._engine_named(name) for name in names}
        return one_engine(self.engines, engine_of)

    def _engine_named(self, name: str) -> Engine:
        wa = self.config.whatsapp
        if name == "sim":
            from bridge.db.sim_network import SimNetworkRepository

            # docs/sim.md: instances of a cluster always share the network
            shared = wa.sim.network == "database" or self.config.cluster.enabled
            return SimEngine(
                self.sessions.handle_event,
                data_dir=self.config.data_path,
                clock=self.clock,
                qr_first_seconds=wa.sim.qr_first_seconds,
                qr_next_seconds=wa.sim.qr_next_seconds,
                auto_pair=wa.sim.auto_pair,
                network=SimNetworkRepository(self.db) if shared and self.db else None,
                sender=self.ownership.instance_id if self.config.cluster.enabled else None,
            )
        if name == "cloud":
            from bridge.whatsapp.cloud.engine import CloudEngine

            return CloudEngine(
                self.sessions.handle_event,
                sessions=self._cloud_sessions(),
                clock=self.clock,
                media_max_bytes=self.config.media.max_size_bytes,
            )
        from bridge.db.devices import DevicePairingRepository
        from bridge.whatsapp.whatsmeow import WhatsmeowEngine

        # pairing records in the database of a PostgreSQL device store (docs/cluster.md)
        pairings = DevicePairingRepository(self.db) if self.db is not None else None
        return WhatsmeowEngine(self.sessions.handle_event, pairings=pairings)

    def _cloud_sessions(self) -> dict[str, CloudConfig]:
        """The Cloud API settings of every session on that engine, by session key."""
        config = self.config
        return {
            s.key: s.cloud
            for s in config.sessions
            if s.cloud is not None and config.engine_of(s) == "cloud"
        }

    def _mount_cloud_routes(self, web: WebServer) -> None:
        """``/cloud/webhook`` (docs/cloud.md), when a session is on the Cloud API."""
        cloud = self.engines.get("cloud")
        if cloud is None:
            return
        from bridge.whatsapp.cloud.webhook import CloudWebhook

        web.add_routes(CloudWebhook(self._cloud_sessions(), cloud.emit).routes())

    def _mount_slack_routes(self, web: WebServer) -> None:
        from bridge.slack import SlackFrontend

        slack = self.frontends.get("slack")
        if isinstance(slack, SlackFrontend) and self.config.slack.mode == "http":
            web.add_routes(slack.http_routes())

    def _mount_sim_routes(self, web: WebServer) -> None:
        from bridge.whatsapp.sim_http import sim_routes

        sim = self.engines.get("sim", self.engine)
        if not isinstance(sim, SimEngine):
            return
        manager = self.sessions
        config = self.config
        keys = [  # beside other engines, /sim serves the sim's own sessions only
            s.key for s in config.sessions if sim is self.engine or config.engine_of(s) == "sim"
        ]

        def resolve(s: str) -> str | None:
            if s in keys:
                return s
            matches = [k for k in keys if k.split("/", 1)[1] == s]
            return matches[0] if len(matches) == 1 else None

        def status_of(key: str) -> str | None:
            return str(manager.status(key)) if key in keys else None

        web.add_routes(
            sim_routes(
                sim,
                status_of=status_of,
                resolve=resolve,
                media_bytes=self.config.media.max_size_bytes,
            )
        )


def build_frontends(config: Config, *, clock: Clock) -> list[Frontend]:
    """The frontends the config asks for."""
    frontends: list[Frontend] = []
    if config.uses_matrix:
        from bridge.matrix.frontend import MatrixFrontend

        frontends.append(MatrixFrontend(config, clock=clock))
    if config.slack.enabled:
        from bridge.slack import SlackFrontend

        frontends.append(SlackFrontend(config.slack, clock=clock, media=config.media))
    return frontends
