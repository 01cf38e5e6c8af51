"""The fake Graph API (tests/fakes/graph_api.py) is as strict as Meta's reference: a
test against it can only pass with bodies Meta would take."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.graph_api import GraphApiFake

ENVELOPE = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "15550100"}


@pytest.fixture
async def graph() -> AsyncIterator[GraphApiFake]:
    fake = await GraphApiFake(link_seconds=0.0).start()
    yield fake
    await fake.close()


async def post(graph: GraphApiFake, body: Any, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token or graph.token}"}
    url = f"{graph.base_url}/v21.0/1000001/messages"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def test_a_bad_token_gets_metas_oauth_error(graph: GraphApiFake) -> None:
    status, answer = await post(graph, {**ENVELOPE, "type": "text", "text": {"body": "x"}}, "bad")
    assert status == 401
    assert answer["error"]["type"] == "OAuthException" and answer["error"]["code"] == 190
    assert answer["error"]["fbtrace_id"]
    assert graph.messages == []


REFUSED: list[tuple[str, dict[str, Any]]] = [
    ("no messaging_product", {"to": "15550100", "type": "text", "text": {"body": "x"}}),
    ("an unknown field", {**ENVELOPE, "type": "text", "text": {"body": "x"}, "extra": 1}),
    (
        "a group as recipient",
        {**ENVELOPE, "to": "1203@g.us", "type": "text", "text": {"body": "x"}},
    ),
    ("an empty text", {**ENVELOPE, "type": "text", "text": {"body": " "}}),
    ("a text field", {**ENVELOPE, "type": "text", "text": {"body": "x", "bold": True}}),
    ("id and link", {**ENVELOPE, "type": "image", "image": {"id": "1", "link": "http://x"}}),
    ("an audio caption", {**ENVELOPE, "type": "audio", "audio": {"link": "x", "caption": "c"}}),
    ("an image file name", {**ENVELOPE, "type": "image", "image": {"link": "x", "filename": "f"}}),
    ("an unknown media id", {**ENVELOPE, "type": "image", "image": {"id": "123"}}),
    (
        "a name alone",
        {**ENVELOPE, "type": "contacts", "contacts": [{"name": {"formatted_name": "A"}}]},
    ),
    ("a reaction to nothing", {**ENVELOPE, "type": "reaction", "reaction": {"emoji": "👍"}}),
    ("a template language", {**ENVELOPE, "type": "template", "template": {"name": "t"}}),
    ("a read mark of no id", {"messaging_product": "whatsapp", "status": "read"}),
]


@pytest.mark.parametrize("body", [r[1] for r in REFUSED], ids=[r[0] for r in REFUSED])
async def test_refused_bodies(graph: GraphApiFake, body: dict[str, Any]) -> None:
    status, answer = await post(graph, body)
    assert status == 400, answer
    assert answer["error"]["error_data"]["details"]
    assert graph.messages == [] and graph.read_marks == []


async def test_links_expire(graph: GraphApiFake) -> None:
    media_id = graph.add_media(b"data", "image/png")
    headers = {"Authorization": f"Bearer {graph.token}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(f"{graph.base_url}/v21.0/{media_id}") as response:
            info = await response.json()
        assert info["file_size"] == 4 and info["mime_type"] == "image/png"
        async with http.get(info["url"]) as response:
            assert response.status == 404  # link_seconds=0: expired at once


async def test_callback_data_is_taken_up_to_512_characters(graph: GraphApiFake) -> None:
    text = {**ENVELOPE, "type": "text", "text": {"body": "x"}}
    status, _ = await post(graph, {**text, "biz_opaque_callback_data": "r" * 512})
    assert status == 200
    status, answer = await post(graph, {**text, "biz_opaque_callback_data": "r" * 513})
    assert status == 400 and "biz_opaque_callback_data" in answer["error"]["error_data"]["details"]
    status, _ = await post(graph, {**text, "biz_opaque_callback_data": 7})
    assert status == 400
    (taken,) = graph.messages
    item = graph.status_of(0, "sent", timestamp=1_700_000_000.9)
    assert item == {
        "id": graph.message_ids[0],
        "status": "sent",
        "timestamp": "1700000000",
        "recipient_id": "15550100",
        "biz_opaque_callback_data": "r" * 512,
    }
    assert taken["text"] == {"body": "x"}


async def test_an_applied_failure_takes_the_message_then_fails(graph: GraphApiFake) -> None:
    graph.fail_next(500, 131000, route="messages", applied=True)
    status, _ = await post(graph, {**ENVELOPE, "type": "text", "text": {"body": "x"}})
    assert status == 500
    assert [m["text"]["body"] for m in graph.messages] == ["x"] and graph.message_ids
    status, _ = await post(graph, {**ENVELOPE, "type": "text", "text": {"body": "y"}})
    assert status == 200 and len(graph.messages) == 2  # one call only


async def test_a_plain_failure_takes_nothing(graph: GraphApiFake) -> None:
    graph.fail_next(500, 131000, route="messages")
    status, _ = await post(graph, {**ENVELOPE, "type": "text", "text": {"body": "x"}})
    assert status == 500 and graph.messages == []


async def test_a_dropped_connection_after_taking_the_message(graph: GraphApiFake) -> None:
    graph.fail_next(0, route="messages", applied=True)
    with pytest.raises(aiohttp.ClientError):
        await post(graph, {**ENVELOPE, "type": "text", "text": {"body": "x"}})
    assert [m["text"]["body"] for m in graph.messages] == ["x"]
    assert graph.calls_to("messages")[0].status == 0
