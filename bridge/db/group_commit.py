"""Group commit: units of work that arrive together share one transaction
(docs/architecture.md#group-commit).

``await committer.run(work, lane=key)`` runs ``work`` (an async callable that may
run more than once) in a transaction and returns its result once that
transaction committed, or raises its own error. Concurrent callers join a group:
the group's task opens ONE transaction, runs its members' bodies one at a time in
arrival order, and commits once; each caller is answered after that commit. When
a body raises or the commit fails, the group is rolled back and every member runs
again alone, in its own transaction, in the same order: one bad unit never fails
another, and each error stays its caller's (a group of one already ran alone: its
error goes to its caller at once).

Lanes: callers are spread over ``lanes`` lanes by their ``lane`` key (keyless
ones share the first). In a lane one group takes members at a time; the next starts as
soon as the previous one stopped taking members, while it commits. Lanes run side
by side, each on its own connection, so that bodies (round trips, run one at a
time in a group) do not cap the rate of events. Work that updates the same rows
must share a key: two groups each holding rows the other wants deadlock, which
PostgreSQL resolves only after ``deadlock_timeout`` (docs/architecture.md).

When a group waits: once nobody is queued a group commits at once, unless the
previous group of its lane is committing: then events are coming faster than
commits, and it waits for one more caller until that commit ended, at most
``window_seconds`` after it began (its members' bound), and never beyond
``max_group`` members. A lone caller on an idle database waits for nobody.

Bodies run in the group's task, in a context of their own (not their caller's):
a body must undo the context variables it sets, and keep no state outside the
database that a rollback would leave behind. A caller cancelled before its body
started is left out; once its body ran, the group goes on and may commit it.
``window_seconds <= 0`` turns grouping off: each call is its own transaction, as
``async with db.transaction()`` would do. So does a call made inside a transaction
(it becomes a savepoint of that transaction).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from bridge.db.database import Database

log = logging.getLogger("bridge.db.group_commit")

T = TypeVar("T")

DEFAULT_MAX_GROUP = 32
"""Members in one group at most: bounds how long the first one waits for the commit."""

DEFAULT_LANES = 4
"""Groups taking members at once, each holding a connection (PostgreSQL's pool: 10)."""


@dataclass(eq=False)
class _Member:
    work: Callable[[], Awaitable[Any]]
    future: asyncio.Future[Any]
    result: Any = None


class GroupCommitter:
    """Runs units of work in shared transactions; see the module docstring."""

    def __init__(
        self,
        db: Database,
        *,
        window_seconds: float,
        max_group: int = DEFAULT_MAX_GROUP,
        lanes: int = DEFAULT_LANES,
    ) -> None:
        self._db = db
        self._window = window_seconds
        self._lanes = [_Lane(db, window_seconds, max(1, max_group)) for _ in range(max(1, lanes))]

    @property
    def enabled(self) -> bool:
        return self._window > 0

    async def run(self, work: Callable[[], Awaitable[T]], *, lane: Hashable = None) -> T:
        """``work()`` in a transaction, maybe shared; its result once committed.
        Work updating the same rows passes the same ``lane`` key."""
        if not self.enabled or self._db.in_transaction():
            async with self._db.transaction():
                return await work()
        chosen = self._lanes[0 if lane is None else hash(lane) % len(self._lanes)]
        return cast(T, await chosen.run(work))


class _Lane:
    """Groups one after another; see the module docstring."""

    def __init__(self, db: Database, window: float, max_group: int) -> None:
        self._db = db
        self._window = window
        self._max_group = max_group
        self._queue: deque[_Member] = deque()
        self._filling = False  # a group is taking members
        self._committing = 0  # groups done taking members, not yet committed
        self._changed = asyncio.Event()  # an arrival, or a commit ended
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, work: Callable[[], Awaitable[Any]]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(_Member(work, future))
        self._changed.set()
        self._start_group()
        return await future

    def _start_group(self) -> None:
        if self._filling or not self._queue:
            return
        self._filling = True
        # a context of its own: no caller's context variables leak into the bodies
        task = asyncio.create_task(self._group(), context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _take(self) -> _Member | None:
        """The next queued member whose caller still waits."""
        while self._queue:
            member = self._queue.popleft()
            if not member.future.done():
                return member
        return None

    async def _group(self) -> None:
        first = self._take()
        if first is None:
            self._filling = False
            return
        members = [first]
        try:
            failure = await self._commit_group(members)
            if failure is None:
                for member in members:
                    _resolve(member.future, member.result)
            elif len(members) == 1:  # it ran alone already: its error is its own
                _fail(first.future, failure)
            else:
                await self._one_by_one(members)
        except BaseException:  # cancelled, or a body raised no Exception
            for member in members:
                member.future.cancel()
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # going away with the loop
                for member in self._queue:
                    member.future.cancel()
                self._queue.clear()
            raise

    async def _commit_group(self, members: list[_Member]) -> Exception | None:
        """Run ``members`` (and whoever joins) in one transaction: None once it
        committed, else why it was rolled back (BEGIN, a body or the commit failed)."""
        committing = False

        def done_filling() -> None:
            nonlocal committing
            if not committing:
                committing = True
                self._filling = False
                self._committing += 1
                self._start_group()  # the next group takes members while this one commits

        try:
            async with self._db.transaction():
                try:
                    members[0].result = await members[0].work()
                    await self._fill(members)
                finally:
                    done_filling()
        except Exception as exc:
            if len(members) > 1:
                log.info("a group of %d rolled back (%s): each runs alone", len(members), exc)
            return exc
        finally:
            done_filling()  # when BEGIN failed
            self._committing -= 1
            self._changed.set()
        return None

    async def _fill(self, members: list[_Member]) -> None:
        deadline = asyncio.get_running_loop().time() + self._window
        while len(members) < self._max_group:
            member = self._take()
            if member is None:
                if await self._more_coming(deadline):
                    continue
                return
            members.append(member)
            member.result = await member.work()

    async def _more_coming(self, deadline: float) -> bool:
        """Whether a caller is queued, waiting for one while the previous group
        commits and the deadline has not passed."""
        loop = asyncio.get_running_loop()
        while not self._queue:
            remaining = deadline - loop.time()
            if self._committing == 0 or remaining <= 0:
                return False
            self._changed.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._changed.wait()
            except TimeoutError:
                return bool(self._queue)
        return True

    async def _one_by_one(self, members: list[_Member]) -> None:
        """A rolled-back group's members, each alone in its own transaction."""
        for member in members:
            if member.future.done():  # its caller was cancelled: its work is undone
                continue
            try:
                async with self._db.transaction():
                    result = await member.work()
            except Exception as exc:
                _fail(member.future, exc)
            else:
                _resolve(member.future, result)


def _resolve(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Any], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)
