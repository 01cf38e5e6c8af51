"""``!sessions`` with several instances names the instance running each session
(docs/commands.md, docs/cluster.md#ownership-and-fencing)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bridge.config import parse_config
from bridge.core.command_model import SessionSeen
from bridge.core.commands import CommandRegistry
from tests.unit.test_commands import (
    ALICE,
    CONFIG,
    OPS,
    FakeOrigins,
    FakeSessions,
    FakeTickets,
    Journal,
    make_ctx,
)


@dataclass(frozen=True)
class Seen:
    status: str
    phone: str | None
    owner: str | None


class FakeCluster:
    async def seen(self) -> Mapping[str, SessionSeen]:
        return {
            "acme/sales": Seen("CONNECTED", "+5511900000001", "zap-2"),
            "acme/support": Seen("DISCONNECTED", None, None),
        }


async def test_sessions_names_each_owner() -> None:
    config = parse_config(CONFIG, path=Path("/srv/zap/config.yaml"))
    journal = Journal()
    registry = CommandRegistry(
        config,
        tickets=FakeTickets(journal),
        sessions=FakeSessions(journal),
        login_origins=FakeOrigins(journal),
        cluster=FakeCluster(),
    )
    reply = await registry.handle(make_ctx(OPS, ALICE), "!sessions")
    assert reply is not None
    assert reply.text == (
        "acme/sales CONNECTED +5511900000001 on zap-2\n"
        "acme/support DISCONNECTED, no instance runs it"
    )


async def test_status_names_the_owner_too() -> None:
    config = parse_config(CONFIG, path=Path("/srv/zap/config.yaml"))
    journal = Journal()
    registry = CommandRegistry(
        config,
        tickets=FakeTickets(journal),
        sessions=FakeSessions(journal),
        login_origins=FakeOrigins(journal),
        cluster=FakeCluster(),
    )
    reply = await registry.handle(make_ctx(OPS, ALICE), "!status support")
    assert reply is not None
    assert reply.text == "acme/support DISCONNECTED, no instance runs it"
    every = await registry.handle(make_ctx(OPS, ALICE), "!status")
    assert every is not None and every.text.startswith(
        "acme/sales CONNECTED +5511900000001 on zap-2\n"
    )
