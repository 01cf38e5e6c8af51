"""The ops notice when a session moves between instances (docs/cluster.md#ownership-and-fencing)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bridge.core.ops import Severity
from tests.unit.test_ops import Harness


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    harness = Harness()
    yield harness
    await harness.notifier.stop()


@pytest.mark.parametrize(
    ("lost", "text", "severity"),
    [
        (True, "🔀 sales moved from zap-1 to zap-2 after zap-1 lost its lease", Severity.WARNING),
        (False, "🔀 sales moved from zap-1 to zap-2 after zap-1 stopped", Severity.INFO),
    ],
)
async def test_a_moved_session_is_told_to_its_companys_ops_channel(
    h: Harness, lost: bool, text: str, severity: Severity
) -> None:
    await h.notifier.on_session_moved("acme/sales", previous="zap-1", owner="zap-2", lost=lost)
    [post] = h.sink.messages
    assert (post.company_id, post.text, post.severity) == ("acme", text, severity)
