"""Group commit: concurrent deliveries share one write transaction and one fsync.

Every commit is an fsync (SQLite ``synchronous=FULL``, PostgreSQL WAL flush),
so a delivery's cost is dominated by it.  Work submitted while a commit is
running is collected and written by the next transaction; each caller's future
resolves only after the shared commit returned, so "durable before 250" still
holds for every caller.  No artificial delay: an idle server commits at once.

If a shared transaction fails, its items are retried one per transaction, so
one bad delivery (say a constraint error) never fails its neighbours.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import Database

log = logging.getLogger("schulhof.mailstore")

W = TypeVar("W")
R = TypeVar("R")
T = TypeVar("T")

MAX_BATCH_ITEMS = 256
MAX_BATCH_BYTES = 32 * 1024 * 1024


class Failed(Exception):
    """Wraps an expected per-item failure a work function returns instead of raising.

    Raising would roll back the whole shared transaction; a work function that
    decides "this item is refused" (e.g. over quota) returns ``Failed(error)``
    and has written nothing for the item.
    """

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def retry_singly(batch: Sequence[T], error: BaseException) -> list[list[T]]:
    """The group commit's answer to a failed shared transaction (here and in
    ``writer_thread``): a batch of several items is retried one item per
    transaction, so one bad item never fails its neighbours and each item's error
    reaches its own caller; for a single item the error is final (no retries)."""
    if len(batch) <= 1:
        return []
    log.warning("event=group_commit_failed items=%d error=%s; retrying singly",
                len(batch), type(error).__name__)
    return [[item] for item in batch]


class CommitBatcher(Generic[W, R]):
    """Runs ``apply(session, works)`` for submitted work, many per transaction.

    ``apply`` returns one result (or ``Failed``) per work item, in order.
    """

    def __init__(self, db: Database,
                 apply: Callable[[AsyncSession, list[W]], Awaitable[list[R | Failed]]],
                 after_commit: Callable[[R], None], *,
                 size_of: Callable[[W], int] = lambda _: 0, enabled: bool = True) -> None:
        self._db = db
        self._apply = apply
        self._after_commit = after_commit
        self._size_of = size_of
        self.enabled = enabled
        self._pending: list[tuple[W, asyncio.Future[R]]] = []
        self._runner: asyncio.Task[None] | None = None
        self.transactions = 0  # for measurements and tests

    async def submit(self, work: W) -> R:
        if not self.enabled:
            return await self._single(work)
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((work, future))
        if self._runner is None:
            self._runner = asyncio.create_task(self._run())
        # A caller that goes away cancels only its own future: the runner task
        # commits the batch all the same (no shield: each link of a future
        # chain is one more turn of a busy event loop before the answer).
        return await future

    async def _transaction(self, works: list[W],
                           committed: Callable[[list[R | Failed]], None] | None = None,
                           ) -> list[R | Failed]:
        """``apply`` in one write transaction (committed when it returns).
        ``committed(results)`` is called on the event loop as soon as the
        commit returned, perhaps before this coroutine resumes."""
        async with self._db.write() as session:
            results = await self._apply(session, works)
        if committed is not None:
            committed(results)
        return results

    async def _single(self, work: W) -> R:
        [result] = await self._transaction([work])
        if isinstance(result, Failed):
            raise result.error
        self.transactions += 1
        self._after_commit(result)
        return result

    async def _run(self) -> None:
        try:
            while self._pending:
                batch = self._take()
                await self._commit(batch)
        finally:
            self._runner = None

    def _take(self) -> list[tuple[W, asyncio.Future[R]]]:
        total, n = 0, 0
        for work, _ in self._pending:
            total += self._size_of(work)
            n += 1
            if n >= MAX_BATCH_ITEMS or total >= MAX_BATCH_BYTES:
                break
        batch, self._pending = self._pending[:n], self._pending[n:]
        return batch

    async def _commit(self, batch: list[tuple[W, asyncio.Future[R]]]) -> None:
        settled = False

        def settle(results: list[R | Failed]) -> None:
            # Called once the commit returned: the callers are answered now,
            # not after this coroutine's next turn of the event loop.
            nonlocal settled
            settled = True
            self._settle(batch, results)

        try:
            await self._transaction([work for work, _ in batch], settle)
        except Exception as exc:
            if settled:  # committed and answered; the error came after
                log.warning("event=group_commit_after_commit error=%s", type(exc).__name__)
            elif singles := retry_singly(batch, exc):
                for single in singles:
                    await self._commit(single)
            elif not batch[0][1].done():
                batch[0][1].set_exception(exc)

    def _settle(self, batch: list[tuple[W, asyncio.Future[R]]],
                results: list[R | Failed]) -> None:
        self.transactions += 1
        for (_, future), result in zip(batch, results, strict=True):
            if isinstance(result, Failed):
                if not future.done():
                    future.set_exception(result.error)
                continue
            try:
                self._after_commit(result)
            except Exception:  # a listener's bug must not undo a durable delivery
                log.exception("event=after_commit_failed")
            if not future.done():
                future.set_result(result)

    def __repr__(self) -> str:
        return f"CommitBatcher(enabled={self.enabled}, pending={len(self._pending)})"
