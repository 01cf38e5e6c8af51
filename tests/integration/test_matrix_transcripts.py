"""``!transcript`` on the whole bridge with a real Synapse: the transcript is an
``m.file`` from the bot in the ticket's thread, its bytes the transcript's text."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness.synapse import MatrixBridge, MatrixUser, bob, bridge, synapse, until

__all__ = ["bob", "bridge", "synapse"]  # fixtures, re-exported for pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")

BOT = "@whatsappbot:localhost"


def in_thread(content: dict[str, Any], root: str) -> dict[str, Any]:
    relates = {"rel_type": "m.thread", "event_id": root, "is_falling_back": True}
    return {**content, "m.relates_to": {**relates, "m.in_reply_to": {"event_id": root}}}


async def test_transcript_is_a_file_in_the_thread(bridge: MatrixBridge, bob: MatrixUser) -> None:
    await bridge.customer(text="Oi, preciso de ajuda")
    root = await bridge.thread_root()
    room = await bridge.room("control")
    await bob.join(room)
    await bob.send(room, in_thread({"msgtype": "m.text", "body": "Claro!"}, root))
    await bridge.outbound(lambda m: m.get("text", "").endswith("Claro!"))
    await bob.send(room, in_thread({"msgtype": "m.text", "body": "!transcript"}, root))

    async def transcript() -> dict[str, Any] | None:
        for event in await bob.messages(room):
            content = event["content"]
            relates = content.get("m.relates_to") or {}
            if (
                event["sender"] == BOT
                and content.get("msgtype") == "m.file"
                and relates.get("rel_type") == "m.thread"
                and relates.get("event_id") == root
            ):
                return dict(content)
        return None

    content = await until(transcript, what="the transcript in the thread", clock=bridge.clock)
    assert content.get("filename", content["body"]) == "ticket-1.txt"
    assert content["info"]["mimetype"] == "text/plain"
    lines = (await bob.download(content["url"])).decode().split("\n")
    assert lines[:3] == ["Ticket #1 · Maria (+5511987654321) · acme/sales", "Times in UTC", ""]
    assert [line.split("] ", 1)[1] for line in lines[3:-1]] == [
        "Maria: Oi, preciso de ajuda",
        "zapbridge: Olá! Um atendente já vai falar com você.",
        "bob: Claro!",  # the display name: the localpart, bob has set none
    ]
