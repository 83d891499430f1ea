"""SQLite group commit on a thread of its own: the thread takes the next
batch itself as soon as COMMIT returned (storage layer).

Through the pool (``raw_sql.run_transaction``) every batch cycle went
through the busy event loop several times: the runner task resumed after
COMMIT (aiosqlite's future, p50 3.8 ms under the IMAP mix), gave the
connection back to the pool (p50 4.9 ms), checked it out again and handed
the next batch to aiosqlite's thread (0.9 ms), while the transaction itself
took 0.5-2.5 ms.  A STORE waited for the previous batch's cycle and then
for its own.  Here callers put their work on a thread-safe queue; the
writer thread collects whatever is waiting (up to the batcher's limits),
runs BEGIN IMMEDIATE .. COMMIT on its own ``sqlite3`` connection and
answers the batch's callers with ``loop.call_soon_threadsafe``; then it
takes the next batch at once, without the event loop.

SQLite still has one writer at a time: the pool's write connection (deliveries,
COPY, MOVE, mailbox changes) and this one take turns through ``BEGIN
IMMEDIATE`` and the busy timeout.

Failures: a batch whose transaction raises is retried one item per
transaction (as ``CommitBatcher``), so one bad item never fails its
neighbours; a single item's error reaches its caller.  The thread survives
every error of a batch; a connection left in a transaction it could not
roll back is closed and opened again for the next batch.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import SQLITE_PRAGMAS, Database
from mailserver.store.batcher import (
    MAX_BATCH_BYTES,
    MAX_BATCH_ITEMS,
    CommitBatcher,
    Failed,
    retry_singly,
)
from mailserver.store.raw_sql import (
    Dialect,
    RawTransaction,
    Steps,
    run_transaction,
    sqlite_dialect,
    transaction_here,
)

log = logging.getLogger("schulhof.mailstore")

W = TypeVar("W")
R = TypeVar("R")


@dataclass(frozen=True)
class Waiting(Generic[W, R]):
    """A submitted work item and the future its caller awaits."""

    work: W
    future: asyncio.Future[R]
    loop: asyncio.AbstractEventLoop


Plan = Callable[[list[W]], tuple[Steps[list[R | Failed]], bool]]
"""Steps of one transaction for a batch, and whether it must be durable."""

Settle = Callable[[list[Waiting[W, R]], list[R | Failed]], None]
"""Answers a committed batch's callers; called on their event loop."""


class _Closed:
    pass


_CLOSE = _Closed()


class WriterThread(Generic[W, R]):
    """Group commit of ``plan``'s transactions on one thread and one
    ``sqlite3`` connection to ``path`` (started with the first submit)."""

    def __init__(self, path: str, plan: Plan[W, R], settle: Settle[W, R], *,
                 size_of: Callable[[W], int] = lambda _: 0,
                 name: str = "schulhof-sqlite-writer") -> None:
        self._path = path
        self._plan = plan
        self._settle = settle
        self._size_of = size_of
        self._name = name
        self._queue: queue.SimpleQueue[Waiting[W, R] | _Closed] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._connection: sqlite3.Connection | None = None

    def submit(self, work: W) -> asyncio.Future[R]:
        """Queue ``work``; the future is resolved on the caller's loop after
        the commit of its batch (or with the error that refused it)."""
        if self._closed:
            raise RuntimeError("the writer thread is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        self._queue.put(Waiting(work, future, loop))
        return future

    async def close(self) -> None:
        """Commit what is queued, then end the thread and its connection."""
        if self._closed:
            return
        self._closed = True
        thread = self._thread
        if thread is None:
            return
        self._queue.put(_CLOSE)
        await asyncio.to_thread(thread.join, 30)

    # --- on the writer thread ---------------------------------------------------
    def _serve(self) -> None:
        carry: Waiting[W, R] | _Closed | None = None
        try:
            while True:
                first = carry if carry is not None else self._queue.get()
                carry = None
                if isinstance(first, _Closed):
                    return
                batch, total = [first], self._size_of(first.work)
                while len(batch) < MAX_BATCH_ITEMS and total < MAX_BATCH_BYTES:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if isinstance(item, _Closed):
                        carry = item
                        break
                    batch.append(item)
                    total += self._size_of(item.work)
                self._commit(batch)
        finally:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _commit(self, batch: list[Waiting[W, R]]) -> None:
        try:
            results = self._transaction([waiting.work for waiting in batch])
        except Exception as exc:
            singles = retry_singly(batch, exc)
            if not singles and batch:
                self._answer(batch[0].loop, _fail, batch[0], exc)
            for single in singles:
                self._commit(single)
            return
        by_loop: dict[asyncio.AbstractEventLoop, tuple[list[Waiting[W, R]],
                                                      list[R | Failed]]] = {}
        for waiting, result in zip(batch, results, strict=True):
            mine = by_loop.setdefault(waiting.loop, ([], []))
            mine[0].append(waiting)
            mine[1].append(result)
        for loop, (waitings, theirs) in by_loop.items():
            self._answer(loop, self._settle, waitings, theirs)

    def _transaction(self, works: list[W]) -> list[R | Failed]:
        connection = self._connection
        if connection is None:
            connection = self._connection = _connect(self._path)
        steps, durable = self._plan(works)
        try:
            return transaction_here(connection, steps, None, durable)
        except BaseException:
            if connection.in_transaction:  # ROLLBACK itself failed
                self._connection = None
                try:
                    connection.close()
                except Exception:
                    log.exception("event=sqlite_writer_close_failed")
            raise

    @staticmethod
    def _answer(loop: asyncio.AbstractEventLoop, call: Callable[..., None],
                *args: object) -> None:
        try:
            loop.call_soon_threadsafe(call, *args)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass


def _fail(waiting: Waiting[W, R], exc: BaseException) -> None:
    if not waiting.future.done():
        waiting.future.set_exception(exc)


def _connect(path: str) -> sqlite3.Connection:
    # Autocommit mode (isolation_level None): BEGIN IMMEDIATE is ours, as on
    # the pool's write connection, with its settings.
    connection = sqlite3.connect(path, isolation_level=None)
    for pragma in SQLITE_PRAGMAS:
        connection.execute(pragma)
    return connection


class RawGroupCommit(CommitBatcher[W, R]):
    """Group commit of transactions written as raw statements (``raw_sql``):
    ``steps(dialect, works)`` writes a batch and ``durable(works)`` says
    whether its COMMIT must wait for the disk.  On an SQLite file the
    batches run on a ``WriterThread`` of their own (BEGIN IMMEDIATE ..
    COMMIT in one hop, the next batch taken right after COMMIT, callers
    answered with ``call_soon_threadsafe``); elsewhere (PostgreSQL) each
    batch is one ``raw_sql.run_transaction`` started by the batcher's task,
    and with group commit off each write is one through a session."""

    def __init__(self, db: Database,
                 steps: Callable[[Dialect, list[W]], Steps[list[R | Failed]]],
                 durable: Callable[[list[W]], bool], after_commit: Callable[[R], None], *,
                 size_of: Callable[[W], int] = lambda _: 0, enabled: bool = True,
                 name: str = "schulhof-sqlite-writer") -> None:
        async def in_session(session: AsyncSession, works: list[W]) -> list[R | Failed]:
            raw = await RawTransaction.of(session)
            return await raw.run(steps(raw.dialect, works))

        super().__init__(db, in_session, after_commit, size_of=size_of, enabled=enabled)
        self._steps = steps
        self._durable = durable
        self._thread: WriterThread[W, R] | None = None
        path = db.sqlite_file
        if path is not None:
            dialect = sqlite_dialect(db)
            self._thread = WriterThread(
                path, lambda works: (steps(dialect, works), durable(works)),
                self._settle_waiting, size_of=size_of, name=name)
            db.on_dispose(self._thread.close)

    async def submit(self, work: W) -> R:
        if self._thread is None or not self.enabled:
            return await super().submit(work)
        return await self._thread.submit(work)

    def _settle_waiting(self, batch: list[Waiting[W, R]], results: list[R | Failed]) -> None:
        self._settle([(waiting.work, waiting.future) for waiting in batch], results)

    async def _transaction(self, works: list[W],
                           committed: Callable[[list[R | Failed]], None] | None = None,
                           ) -> list[R | Failed]:
        return await run_transaction(self._db, lambda dialect: self._steps(dialect, works),
                                     committed, durable=self._durable(works))
