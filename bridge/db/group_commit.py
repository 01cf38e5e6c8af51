"""Group commit: units of work that arrive together share one transaction
(docs/architecture.md#group-commit).

``await committer.run(work)`` runs ``work`` (an async callable that may run more
than once) in a transaction and returns its result once that transaction
committed, or raises its own error. Concurrent callers join one group: the group's
task opens ONE transaction, runs the members' bodies one at a time in arrival
order, and commits once; each caller is answered after that commit. When a body
raises or the commit fails, the group is rolled back and every member runs again
alone, in its own transaction, in the same order: one bad unit never fails
another, and each error stays its caller's (a group of one already ran alone: its
error goes to its caller at once). After a failed body no other group takes
members until they ran again, so arrival order holds; after a failed COMMIT the
next group may already be under way.

When a group waits: a group starts as soon as a caller arrives and takes, without
waiting, whoever arrives while its bodies run. Once nobody is queued it commits at
once, unless another group of this committer is still committing: then arrivals
are coming faster than commits, and it waits for more members until that commit
ended, or ``window_seconds`` after it began (its members' bound), or it holds
``max_group`` members. A lone caller on an idle database thus waits for nobody.
Only one group takes members at a time (two groups locking rows in opposite
orders could deadlock); the next one starts while the previous one commits.

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from bridge.db.database import Database

log = logging.getLogger("bridge.db.group_commit")

T = TypeVar("T")

DEFAULT_MAX_GROUP = 32
"""Members in one group at most: bounds how long the first one waits for the commit."""


@dataclass(eq=False)
class _Member:
    work: Callable[[], Awaitable[Any]]
    future: asyncio.Future[Any]
    result: Any = None


@dataclass(eq=False)
class _Group:
    members: list[_Member]
    holding: bool = False  # a body failed: it keeps ``_filling`` until they ran again


class GroupCommitter:
    """Runs units of work in shared transactions; see the module docstring."""

    def __init__(
        self, db: Database, *, window_seconds: float, max_group: int = DEFAULT_MAX_GROUP
    ) -> None:
        self._db = db
        self._window = window_seconds
        self._max = max(1, max_group)
        self._queue: deque[_Member] = deque()
        self._filling = False  # a group is taking members
        self._committing = 0  # groups done taking members, not yet committed
        self._changed = asyncio.Event()  # an arrival, or a commit ended
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return self._window > 0

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        """``work()`` in a transaction, maybe shared; its result once committed."""
        if not self.enabled or self._db.in_transaction():
            async with self._db.transaction():
                return await work()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(_Member(work, future))
        self._changed.set()
        self._start_group()
        return cast(T, await future)

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
        group = _Group([first])
        try:
            failure = await self._commit_group(group)
            if failure is None:
                for member in group.members:
                    _resolve(member.future, member.result)
            elif len(group.members) == 1:  # it ran alone already: its error is its own
                _fail(first.future, failure)
            else:
                await self._one_by_one(group.members)
        except BaseException:  # cancelled, or a body raised no Exception
            for member in group.members:
                member.future.cancel()
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # going away with the loop
                for member in self._queue:
                    member.future.cancel()
                self._queue.clear()
            raise
        finally:
            if group.holding:  # the next group starts after the members ran again
                self._filling = False
                self._start_group()

    async def _commit_group(self, group: _Group) -> Exception | None:
        """Run the group's members (and whoever joins) in one transaction: None once
        it committed, else why it was rolled back (BEGIN, a body or the commit
        failed). A failed body keeps the group holding the right to take members,
        so that no later arrival commits before the members ran again alone."""
        committing = False

        def done_filling() -> None:
            nonlocal committing
            if not committing and not group.holding:
                committing = True
                self._filling = False
                self._committing += 1
                self._start_group()  # the next group takes members while this one commits

        members = group.members
        try:
            async with self._db.transaction():
                try:
                    members[0].result = await members[0].work()
                    await self._fill(members)
                except Exception:
                    group.holding = True
                    raise
                done_filling()
        except Exception as exc:
            if len(members) > 1:
                log.info("a group of %d rolled back (%s): each runs alone", len(members), exc)
            return exc
        finally:
            done_filling()  # BEGIN failed, or the task was cancelled
            if committing:
                self._committing -= 1
                self._changed.set()
        return None

    async def _fill(self, members: list[_Member]) -> None:
        deadline = asyncio.get_running_loop().time() + self._window
        while len(members) < self._max:
            member = self._take()
            if member is None:
                if await self._more_coming(deadline):
                    continue
                return
            members.append(member)
            member.result = await member.work()

    async def _more_coming(self, deadline: float) -> bool:
        """Whether a member arrived, waiting for one while another group commits
        and the deadline has not passed."""
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
