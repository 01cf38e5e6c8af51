"""Text from WhatsApp that one database takes and the other refuses (issue 11, item 7):
NUL and other control characters, lone surrogates. The session manager cleans every
engine event (:func:`bridge.model.clean_text`), so both databases store the same."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.core.frontend import AuthorKind
from bridge.db.database import Database
from bridge.model import Text
from tests.fakes.frontend import FakeFrontend
from tests.harness.core import CoreHarness


@pytest.fixture
async def core(tmp_path: Path, db: Database) -> AsyncIterator[CoreHarness]:
    harness = CoreHarness(tmp_path, db, frontends=[FakeFrontend("matrix")])
    await harness.start()
    yield harness
    await harness.stop()


async def test_nul_and_lone_surrogates_are_stored_and_delivered(core: CoreHarness) -> None:
    wa_id = await core.customer(text="a\x00b\ud800c\x1b[0m", name="Ma\x00ria\udc00")
    session_id = core.bridge.session_ids["acme/sales"]
    stored = await core.bridge.repos.messages.find_by_wa_id(session_id, wa_id)
    assert stored is not None
    assert stored.content["body"] == "ab\ufffdc[0m"
    fe = core.frontends["matrix"]
    [post] = [c for c in fe.of("post") if c.args["author"].kind is AuthorKind.CUSTOMER]
    assert post.args["content"] == Text("ab\ufffdc[0m")
    assert post.args["author"].name == "Maria\ufffd"
