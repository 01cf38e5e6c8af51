"""The bridge's cluster wiring (docs/cluster.md): who owns which session, the outbox
claims and wake-ups between instances, the hand-over of sessions and the leader's
singletons. A part of :class:`bridge.app.Bridge`, kept apart to keep each module
small; with ``cluster.enabled`` off it builds a sole owner and nothing else."""

from __future__ import annotations

import contextlib
import functools
import logging
import random
from collections.abc import Awaitable, Callable

from bridge.clock import Clock
from bridge.cluster.identity import instance_id
from bridge.cluster.ownership import Ownership
from bridge.cluster.view import OwnershipView, SoleOwnership
from bridge.config import Config
from bridge.core.frontend import Frontend
from bridge.core.idle_tickets import IdleTickets
from bridge.core.menu_timeouts import MenuTimeouts
from bridge.core.ops import OpsNotifier
from bridge.core.outbox_claims import DatabaseClaims
from bridge.db.database import Database, PostgresDatabase
from bridge.db.leases import LeaseRepository
from bridge.db.notify import Notifier
from bridge.db.outbox_claims import OutboxClaimRepository
from bridge.errors import DatabaseError
from bridge.metrics import Metrics
from bridge.whatsapp.engine import Engine
from bridge.whatsapp.session_ownership import SessionHandover
from bridge.whatsapp.sessions import SessionManager
from bridge.whatsapp.sim import SimEngine

log = logging.getLogger("bridge.app")

# LISTEN/NOTIFY channels between instances (docs/cluster.md), besides the outbox's own
CLUSTER_CHANNEL = "cluster"  # a start or a clean stop: look at the leases now
SIM_CHANNEL = "sim"  # a /sim message held for whichever instance runs its session


class ClusterWiring:
    """The cluster's part of the bridge; :class:`bridge.app.Bridge` builds the rest."""

    # set by the bridge before these methods run
    config: Config
    clock: Clock
    rng: random.Random
    metrics: Metrics
    frontends: dict[str, Frontend]
    engines: dict[str, Engine]
    sessions: SessionManager
    notifier: OpsNotifier
    idle_tickets: IdleTickets
    menu_timeouts: MenuTimeouts
    _stack: contextlib.AsyncExitStack
    # set here
    leases: LeaseRepository
    cluster: Ownership | None
    ownership: OwnershipView
    wakeups: Notifier | None

    def _build_ownership(self, db: Database, keys: list[str]) -> None:
        """Who owns which session (docs/cluster.md#ownership-and-fencing): leases in
        the database with ``cluster.enabled``, else this instance owns everything."""
        cluster = self.config.cluster
        me = instance_id(cluster)
        self.leases = LeaseRepository(db)
        self.cluster = None
        self.ownership = SoleOwnership(keys, instance_id=me)
        if cluster.enabled:
            self.cluster = Ownership(
                self.leases,
                session_keys=keys,
                instance_id=me,
                lease_seconds=cluster.lease_seconds,
                clock=self.clock,
                metrics=self.metrics,
            )
            self.ownership = self.cluster

    def _outbox_claims(self, db: Database) -> DatabaseClaims | None:
        """With several instances, ordering keys are claimed in the database and the
        instances wake each other over LISTEN/NOTIFY (docs/cluster.md#outbox-across-instances)."""
        self.wakeups = None
        if self.cluster is None or not isinstance(db, PostgresDatabase):
            return None
        self.wakeups = Notifier(db, clock=self.clock, rng=self.rng)
        repo = OutboxClaimRepository(
            db, holder=self.cluster.instance_id, seconds=self.config.cluster.lease_seconds
        )
        return DatabaseClaims(repo, owner=self.cluster, notifier=self.wakeups, clock=self.clock)

    async def _start_wakeups(self) -> None:
        """Listen for the other instances: a session let go (look at the leases now), a
        sim message held for a session run here (docs/cluster.md)."""
        wakeups, cluster = self.wakeups, self.cluster
        if wakeups is None or cluster is None:
            return
        await wakeups.start()
        self._stack.push_async_callback(wakeups.stop)  # after the outbox stopped
        await wakeups.listen(CLUSTER_CHANNEL, _ignoring_payload(cluster.wake))
        cluster.announce = self._announce_cluster_change  # after a hand-over
        sims = [e for e in self.engines.values() if isinstance(e, SimEngine) and e.shared]
        for sim in sims:
            sim.announce_held = functools.partial(wakeups.notify, SIM_CHANNEL, "")
        for sim in sims:
            await wakeups.listen(SIM_CHANNEL, _ignoring_payload(sim.wake))

    async def _announce_cluster_change(self) -> None:
        """Ask the other instances to look at the leases now (a start, a clean stop)."""
        if self.wakeups is not None:
            try:
                await self.wakeups.notify(CLUSTER_CHANNEL, self.ownership.instance_id)
            except DatabaseError as exc:  # they look at their next pass anyway
                log.warning("could not tell the other instances: %s", exc)

    def _leader_only(
        self, hook: Callable[[float], Awaitable[int]]
    ) -> Callable[[float], Awaitable[int]]:
        """A periodic clean-up run by the leader only (docs/cluster.md)."""

        async def run(now: float) -> int:
            return await hook(now) if self.ownership.is_leader() else 0

        return run

    async def _start_owned_sessions(
        self, cluster: Ownership, stop_sessions: Callable[[], Awaitable[None]]
    ) -> None:
        """The first ownership pass, then the sessions owned; later ones follow the
        leases (docs/cluster.md). On a stop the leases go first, so the sessions are
        handed over at once."""
        handover = SessionHandover(
            self.sessions, on_moved=self._session_moved, on_leader=self._leading
        )
        cluster.listen(handover)
        await cluster.start()
        self._stack.push_async_callback(stop_sessions)
        self._stack.push_async_callback(self._announce_cluster_change)  # leases released
        self._stack.push_async_callback(cluster.stop)  # runs first
        await self.sessions.start(only=cluster.owned())  # later gains: adopt
        await self._announce_cluster_change()  # the others hand over their extra sessions

    async def _session_moved(self, key: str, previous: str, how: str) -> None:
        me = self.ownership.instance_id
        await self.notifier.on_session_moved(key, previous=previous, owner=me, lost=how == "lost")

    async def _leading(self, leading: bool) -> None:
        """The singletons that are tasks of their own start and stop with the leadership."""
        if leading:
            await self.idle_tickets.start()
            await self.menu_timeouts.start()
        else:
            await self.idle_tickets.stop()
            await self.menu_timeouts.stop()

    def _gate_matrix_catch_up(self) -> None:
        """After an outage every instance saw, only the leader reads Matrix back."""
        if self.cluster is None or "matrix" not in self.frontends:
            return
        from bridge.matrix.frontend import MatrixFrontend

        matrix = self.frontends["matrix"]
        if isinstance(matrix, MatrixFrontend):
            matrix.watch.recovers = self.cluster.is_leader


def _ignoring_payload(wake: Callable[[], None]) -> Callable[[str], None]:
    """A LISTEN callback that only wakes ``wake``'s owner."""
    return lambda _payload: wake()
