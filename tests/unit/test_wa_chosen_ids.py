"""Caller-chosen WhatsApp message ids: derived per stored message, honoured by the sim,
which drops a repeated id the way a recipient's phone does (also after a restart),
and passed through by the session manager."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.clock import FakeClock
from bridge.model import Text
from bridge.whatsapp.engine import EngineEvent, SessionSpec, derived_message_id
from bridge.whatsapp.sim import SimEngine

KEY = "acme/sales"
CUSTOMER = "+5511987654321"
WHATSMEOW_ID = re.compile(r"3EB0[0-9A-F]{18}")


async def ignore(event: EngineEvent) -> None:
    pass


def spec(tmp_path: Path) -> SessionSpec:
    return SessionSpec(key=KEY, company="acme", name="sales", device_dir=tmp_path / "dev")


class Network:
    """Sim engines over one data directory: each new one is a bridge restart."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.clock = FakeClock()
        self.engines: list[SimEngine] = []

    async def connected(self) -> SimEngine:
        sim = SimEngine(ignore, data_dir=self.tmp_path / "data", clock=self.clock, auto_pair=True)
        self.engines.append(sim)
        await sim.connect(spec(self.tmp_path))
        return sim


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Network]:
    net = Network(tmp_path)
    yield net
    for sim in net.engines:
        await sim.close()


# --- derived ids --------------------------------------------------------------


def test_derived_id_is_stable_and_looks_like_whatsmeows() -> None:
    first = derived_message_id(KEY, message_id=41, created_at=1_700_000_000.25)
    assert first == derived_message_id(KEY, message_id=41, created_at=1_700_000_000.25)
    assert WHATSMEOW_ID.fullmatch(first)


@pytest.mark.parametrize(
    ("key", "message_id", "created_at"),
    [
        (KEY, 42, 1_700_000_000.25),  # another row
        ("acme/support", 41, 1_700_000_000.25),  # another session
        (KEY, 41, 1_700_000_007.5),  # the same row number in another install
    ],
)
def test_derived_id_differs_for_another_row_session_or_install(
    key: str, message_id: int, created_at: float
) -> None:
    first = derived_message_id(KEY, message_id=41, created_at=1_700_000_000.25)
    assert derived_message_id(key, message_id=message_id, created_at=created_at) != first


def test_derived_ids_of_many_rows_are_distinct() -> None:
    ids = {derived_message_id(KEY, message_id=n, created_at=1_700_000_000.0) for n in range(5000)}
    assert len(ids) == 5000


# --- the sim honours them -------------------------------------------------------


async def test_the_sim_sends_with_the_chosen_id(network: Network) -> None:
    sim = await network.connected()
    chosen = derived_message_id(KEY, message_id=1, created_at=1.0)
    assert await sim.send(KEY, CUSTOMER, Text("olá"), message_id=chosen) == chosen
    [entry] = sim.outbound(KEY)
    assert (entry["id"], entry["text"]) == (chosen, "olá")


async def test_the_sim_drops_a_repeated_id_like_a_recipient(network: Network) -> None:
    sim = await network.connected()
    await sim.send(KEY, CUSTOMER, Text("um"), message_id="3EB0000000000000000001")
    again = await sim.send(KEY, CUSTOMER, Text("um"), message_id="3EB0000000000000000001")
    await sim.send(KEY, CUSTOMER, Text("dois"), message_id="3EB0000000000000000002")
    assert again == "3EB0000000000000000001"
    assert [(e["id"], e["text"]) for e in sim.outbound(KEY)] == [
        ("3EB0000000000000000001", "um"),
        ("3EB0000000000000000002", "dois"),
    ]


async def test_actions_with_a_repeated_id_are_dropped_too(network: Network) -> None:
    sim = await network.connected()
    target = await sim.send(KEY, CUSTOMER, Text("um"))
    for _ in range(2):
        await sim.react(
            KEY, CUSTOMER, target=target, target_sender=None, emoji="👍", message_id="R1"
        )
        await sim.edit(KEY, CUSTOMER, target=target, text="um!", message_id="E1")
        await sim.revoke(KEY, CUSTOMER, target=target, message_id="D1")
    assert [e["kind"] for e in sim.outbound(KEY)] == ["text", "reaction", "edit", "revoke"]


async def test_the_sim_drops_a_repeated_id_after_a_restart(network: Network) -> None:
    before = await network.connected()
    await before.send(KEY, CUSTOMER, Text("um"), message_id="3EB0000000000000000001")
    await before.close()

    after = await network.connected()  # a new bridge process, same data_dir
    sent = await after.send(KEY, CUSTOMER, Text("um"), message_id="3EB0000000000000000001")
    assert sent == "3EB0000000000000000001"
    assert [e["text"] for e in after.outbound(KEY)] == ["um"]
    log_file = network.tmp_path / "data" / "sim" / "acme" / "sales" / "outbound.jsonl"
    assert len(log_file.read_text().splitlines()) == 1


async def test_without_a_chosen_id_every_send_is_new(network: Network) -> None:
    sim = await network.connected()
    first = await sim.send(KEY, CUSTOMER, Text("um"))
    second = await sim.send(KEY, CUSTOMER, Text("um"))
    assert first != second
    assert WHATSMEOW_ID.fullmatch(first) and WHATSMEOW_ID.fullmatch(second)
    assert len(sim.outbound(KEY)) == 2
