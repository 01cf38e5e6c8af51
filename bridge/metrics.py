"""Prometheus metrics, served at ``/metrics`` (each one listed in docs/operations.md,
"Metrics"). One ``Metrics`` object per bridge, holding its own registry, passed to
whoever feeds it (no module-level globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

SESSION_STATUSES = (
    "OPENING",
    "QRCODE",
    "CONNECTED",
    "DISCONNECTED",
    "LOGGED_OUT",
    "BANNED",
    "OUTDATED",
    "STOPPED",
)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_RESPONSE_BUCKETS = (10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages = Counter(
            "zapbridge_messages",
            "Messages relayed, by direction (inbound from WhatsApp, outbound to it) and kind",
            ["direction", "kind", "session"],
            registry=r,
        )
        self.session_status = Gauge(
            "zapbridge_session_status",
            "1 for the current status of each session, 0 for the others",
            ["session", "status"],
            registry=r,
        )
        self._status_gauges: dict[str, dict[str, Gauge]] = {}  # session → status → child
        self.outbox_pending = Gauge(
            "zapbridge_outbox_pending", "Outbox deliveries not yet done", registry=r
        )
        self.outbox_dead = Gauge(
            "zapbridge_outbox_dead", "Outbox deliveries that exhausted their retries", registry=r
        )
        self.first_response = Histogram(
            "zapbridge_ticket_first_response_seconds",
            "Time from ticket creation to the first attendant response",
            ["session"],
            buckets=_RESPONSE_BUCKETS,
            registry=r,
        )
        self.relay_latency = Histogram(
            "zapbridge_relay_latency_seconds",
            "Time from an event's arrival to its delivery at the destination",
            ["destination"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.delivery_acks = Counter(
            "zapbridge_delivery_acks",
            "WhatsApp delivery acknowledgements of messages sent to customers",
            ["status"],
            registry=r,
        )
        self.events_quarantined = Counter(
            "zapbridge_events_quarantined",
            "Inbound events set aside because they could not be handled, by source",
            ["source"],
            registry=r,
        )
        self.journaled = Counter(
            "zapbridge_inbound_journaled",
            "Items the database refused, kept in a local journal to be replayed (bridge.journal)",
            ["journal"],
            registry=r,
        )
        self.dropped = Counter(
            "zapbridge_inbound_dropped",
            "Items the database refused that no journal could keep: lost (should stay 0)",
            ["journal"],
            registry=r,
        )
        self.journal_pending = Gauge(
            "zapbridge_journal_pending",
            "Items kept in a local journal, waiting for the database",
            ["journal"],
            registry=r,
        )
        self.presence_updates = Counter(
            "zapbridge_presence_updates",
            "Read marks and typing changes toward customers, sent or dropped (docs/presence.md)",
            ["kind", "outcome"],
            registry=r,
        )
        self.csat_ratings = Counter(
            "zapbridge_csat_ratings",
            "Satisfaction ratings customers gave closed tickets (docs/tickets.md#satisfaction)",
            ["session", "score"],
            registry=r,
        )
        self.queue_routes = Counter(
            "zapbridge_queue_routes",
            "Tickets routed to a queue, by how (docs/tickets.md#queues)",
            ["session", "queue", "how"],
            registry=r,
        )
        self.reconnects = Counter(
            "zapbridge_reconnects",
            "Reconnection attempts after a transient disconnect",
            ["session"],
            registry=r,
        )

        # several instances (docs/cluster.md): each labels its own figures
        self.cluster_owned = Gauge(
            "zapbridge_cluster_owned_sessions",
            "Sessions this instance owns (holds the lease of)",
            ["instance"],
            registry=r,
        )
        self.cluster_leader = Gauge(
            "zapbridge_cluster_leader",
            "1 while this instance holds the leader lease and runs the singletons",
            ["instance"],
            registry=r,
        )
        self.cluster_gained = Counter(
            "zapbridge_cluster_sessions_gained",
            "Session leases this instance took, by how (first, lost, stopped, rebalanced)",
            ["instance", "how"],
            registry=r,
        )
        self.cluster_lost = Counter(
            "zapbridge_cluster_sessions_lost",
            "Session leases this instance gave up or lost",
            ["instance"],
            registry=r,
        )

    def set_session_status(self, session: str, status: str) -> None:
        gauges = self._status_gauges.get(session)
        if gauges is None:  # labels() is slow: once per session, not per change
            gauges = {
                n: self.session_status.labels(session=session, status=n) for n in SESSION_STATUSES
            }
            self._status_gauges[session] = gauges
        for name, gauge in gauges.items():
            gauge.set(1 if name == status else 0)

    def clear_session_status(self, session: str) -> None:
        """A session another instance runs now: its status is that one's to report."""
        self._status_gauges.pop(session, None)
        for name in SESSION_STATUSES:
            self.session_status.remove(session, name)

    def render(self) -> bytes:
        return generate_latest(self.registry)
