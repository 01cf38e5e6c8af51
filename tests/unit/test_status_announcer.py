"""StatusAnnouncer: what is queued together is saved together by a store that can
(one call), each change then announced in order after it was saved; a store that
cannot, or a batch that fails, is saved one by one and nothing is skipped."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.errors import DatabaseError
from bridge.whatsapp.status import SessionStatus, StatusChange
from bridge.whatsapp.status_announcer import StatusAnnouncer, StatusRecord

S = SessionStatus


def record(key: str, new: S, old: S | None = None) -> StatusRecord:
    change = StatusChange(
        key=key, old=old, new=new, reason="test", action=None, phone=None, at=1.0, attempt=0
    )
    return StatusRecord(
        key=key, status=new, phone=None, error=None, connected_at=None, change=change
    )


class OneByOne:
    def __init__(self) -> None:
        self.saved: list[tuple[str, str]] = []

    async def save_status(
        self,
        key: str,
        status: str,
        *,
        phone: str | None,
        error: str | None,
        connected_at: float | None,
    ) -> None:
        self.saved.append((key, status))


class Together(OneByOne):
    def __init__(self, *, broken: bool = False) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.broken = broken

    async def save_statuses(self, records: Sequence[StatusRecord]) -> None:
        if self.broken:
            raise DatabaseError("the batch failed")
        self.batches.append(len(records))
        self.saved += [(r.key, r.status.value) for r in records]


RECORDS = [
    record("acme/a", S.OPENING),
    record("acme/b", S.OPENING),
    record("acme/a", S.CONNECTED, S.OPENING),
    record("acme/b", S.CONNECTED, S.OPENING),
]
EXPECTED = [(r.key, r.status.value) for r in RECORDS]


async def announce_all(store: OneByOne) -> list[tuple[str, str, bool]]:
    """Queue RECORDS at once; (key, status, saved already) per announcement."""
    announcer = StatusAnnouncer(store)
    heard: list[tuple[str, str, bool]] = []

    def listener(change: StatusChange) -> None:
        pair = (change.key, change.new.value)
        heard.append((*pair, pair in store.saved))

    announcer.add_listener(listener)
    for r in RECORDS:
        announcer.record(r)
    await announcer.flush()
    await announcer.close(grace_seconds=1)
    return heard


async def test_a_batch_store_saves_what_was_queued_in_one_call_before_announcing() -> None:
    store = Together()
    heard = await announce_all(store)
    assert store.batches == [len(RECORDS)]
    assert store.saved == EXPECTED
    assert heard == [(*pair, True) for pair in EXPECTED]


async def test_a_failed_batch_is_saved_one_by_one_and_every_change_announced() -> None:
    store = Together(broken=True)
    heard = await announce_all(store)
    assert store.batches == []
    assert store.saved == EXPECTED
    assert heard == [(*pair, True) for pair in EXPECTED]


async def test_a_store_without_batches_saves_each_change_in_order() -> None:
    store = OneByOne()
    heard = await announce_all(store)
    assert store.saved == EXPECTED
    assert heard == [(*pair, True) for pair in EXPECTED]
