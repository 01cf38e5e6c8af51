"""The whatsmeow engine cannot honour a caller-chosen message id (neonize 0.5.2's
``send_message`` has no way to pass ``SendRequestExtra.ID``): it accepts the argument,
sends as before and answers the id whatsmeow generated."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from neonize.aioze.client import NewAClient

from bridge.model import Text
from tests.fakes.neonize_client import EngineHarness

KEY = "acme/sales"
CHOSEN = "3EB0C0FFEE0000000000AB"


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[EngineHarness]:
    harness = EngineHarness(tmp_path / "devices")
    yield harness
    await harness.engine.close()


def test_neonize_send_message_takes_no_message_id() -> None:
    params = set(inspect.signature(NewAClient.send_message).parameters)
    assert not params & {"id", "ID", "message_id", "extra"}, "neonize can carry it now: use it"


async def test_a_chosen_id_is_ignored_and_whatsmeows_own_id_answered(h: EngineHarness) -> None:
    client = await h.connected()
    client.on_whatsapp["+5511987654321"] = "5511987654321"
    sent = await h.engine.send(KEY, "+5511987654321", Text(body="hi"), message_id=CHOSEN)
    reacted = await h.engine.react(
        KEY, "+5511987654321", target=sent, target_sender=None, emoji="👍", message_id="R1"
    )
    edited = await h.engine.edit(KEY, "+5511987654321", target=sent, text="hi!", message_id="E1")
    revoked = await h.engine.revoke(KEY, "+5511987654321", target=sent, message_id="D1")
    assert len(client.sent) == 4
    assert CHOSEN not in (sent, reacted, edited, revoked)
    assert len({sent, reacted, edited, revoked}) == 4
