"""Text from WhatsApp that one database takes and the other refuses (issue 11, item 7):
NUL and other control characters, lone surrogates. The session manager cleans every
engine event (:func:`bridge.model.clean_text`), so both databases store the same."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bridge.core.frontend import AuthorKind
from bridge.db.database import Database
from bridge.model import Text
from tests.fakes.frontend import FakeFrontend
from tests.harness.core import CUSTOMER, CoreHarness, until


@pytest.fixture
async def core(tmp_path: Path, db: Database) -> AsyncIterator[CoreHarness]:
    harness = CoreHarness(tmp_path, db, frontends=[FakeFrontend("matrix")])
    await harness.start()
    yield harness
    await harness.stop()


def customer_posts(core: CoreHarness) -> list[tuple[str | None, object]]:
    fe = core.frontends["matrix"]
    return [
        (c.args["author"].name, c.args["content"])
        for c in fe.of("post")
        if c.args["author"].kind is AuthorKind.CUSTOMER
    ]


async def test_nul_and_lone_surrogates_are_stored_and_delivered(core: CoreHarness) -> None:
    wa_id = await core.customer(text="a\x00b\ud800c\x1b[0m", name="Ma\x00ria\udc00")
    session_id = core.bridge.session_ids["acme/sales"]
    stored = await core.bridge.repos.messages.find_by_wa_id(session_id, wa_id)
    assert stored is not None
    assert stored.content["body"] == "ab\ufffdc[0m"
    contact = await core.bridge.repos.contacts.find(session_id, phone=CUSTOMER)
    assert contact is not None and contact.push_name == "Maria\ufffd"
    assert customer_posts(core) == [("Maria\ufffd", Text("ab\ufffdc[0m"))]


async def test_a_nul_through_the_sim_api_is_stored_and_delivered(core: CoreHarness) -> None:
    body = {"from": CUSTOMER, "push_name": "Jo\x00ão", "kind": "text", "text": "oi\x00!"}
    url = f"http://127.0.0.1:{core.bridge.web.port}/sim/sessions/sales/inbound"
    async with aiohttp.ClientSession() as http, http.post(url, data=json.dumps(body)) as resp:
        assert resp.status == 200, await resp.text()
        wa_id = (await resp.json())["id"]
    session_id = core.bridge.session_ids["acme/sales"]
    stored = await until(
        lambda: core.bridge.repos.messages.find_by_wa_id(session_id, wa_id), what="stored"
    )
    assert stored.content["body"] == "oi!"
    await core.settle()
    assert customer_posts(core) == [("João", Text("oi!"))]
