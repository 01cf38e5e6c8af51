"""The quarantine repository, on both engines."""

from __future__ import annotations

import asyncio

from bridge.db import QuarantinedEventRow, Repositories
from bridge.db.quarantine import SetAsideEvent


async def test_quarantine_roundtrip(repos: Repositories) -> None:
    repo = repos.quarantine
    assert await repo.count() == 0
    excerpt = '{"content":{"body":"x","m.relates_to":"junk"}}'
    assert await repo.add(
        SetAsideEvent(
            source="matrix",
            event_id="$poison",
            company_id="acme",
            reason="content.m.relates_to is a string, not an object",
            excerpt=excerpt,
        ),
        now=10.0,
    )
    row = await repo.get("matrix", "$poison")
    assert row == QuarantinedEventRow(
        row.id if row else 0,
        "matrix",
        "$poison",
        "acme",
        "content.m.relates_to is a string, not an object",
        excerpt,
        10.0,
    )
    # a redelivery of the same event: not new, the first record kept
    assert not await repo.add(
        SetAsideEvent(
            source="matrix", event_id="$poison", company_id=None, reason="other", excerpt=""
        ),
        now=20.0,
    )
    assert await repo.get("matrix", "$poison") == row
    # the same id from another source is another event; no company is fine
    assert await repo.add(
        SetAsideEvent(
            source="slack", event_id="$poison", company_id=None, reason="r", excerpt="{}"
        ),
        now=30.0,
    )
    assert (await repo.get("slack", "$poison")).company_id is None  # type: ignore[union-attr]
    assert await repo.get("matrix", "$other") is None
    assert await repo.count() == 2

    assert await repo.prune(before=15.0) == 1
    assert await repo.get("matrix", "$poison") is None
    assert await repo.count() == 1


async def test_two_deliveries_racing_record_the_event_once(repos: Repositories) -> None:
    added = await asyncio.gather(
        *(
            repos.quarantine.add(
                SetAsideEvent(
                    source="matrix", event_id="$race", company_id=None, reason="r", excerpt="{}"
                )
            )
            for _ in range(5)
        )
    )
    assert sorted(added) == [False, False, False, False, True]
