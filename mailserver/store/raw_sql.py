"""Statements straight to the driver inside a running write transaction
(storage layer): aiosqlite on SQLite, asyncpg on PostgreSQL.

A write is written once, as a generator of statements (``Fetch``, ``Many``)
that receives each statement's rows; ``RawTransaction.run`` drives it.  On
PostgreSQL every statement is one asyncpg round trip.  On SQLite the whole
generator runs in aiosqlite's own thread, on the connection that holds the
transaction: one hop for a whole batch instead of one (or, through
SQLAlchemy's async layer, several) per statement, each waiting for the GIL
behind a busy event loop; under load those hops, not the SQL, held the
single writer.  SQL uses ``?`` placeholders; for PostgreSQL they become
``$1, $2, ...``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
import threading
import weakref
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import Database
from directory.schema import UtcDateTime

T = TypeVar("T")
Row = Sequence[Any]


@dataclass(frozen=True)
class Fetch:
    """A statement whose rows the generator receives (also DML ... RETURNING)."""

    sql: str
    parameters: Sequence[object] = ()


@dataclass(frozen=True)
class Many:
    """One statement for many parameter rows; the generator receives []."""

    sql: str
    rows: Sequence[Sequence[object]]


Steps = Generator[Fetch | Many, list[Row], T]


@dataclass(frozen=True)
class Dialect:
    """What a generator must know of the backend to write its SQL."""

    sqlite: bool
    date: Callable[[dt.datetime], object]  # a UtcDateTime column's bound value

    def where_in(self, values: Sequence[object]) -> tuple[str, list[object]]:
        """``IN (?, ?, ...)`` on SQLite, ``= ANY(?)`` with one array on PostgreSQL."""
        if self.sqlite:
            return f"IN ({','.join('?' * len(values))})", list(values)
        return "= ANY(?)", [list(values)]

    @property
    def for_update(self) -> str:
        return "" if self.sqlite else " FOR UPDATE"  # SQLite: the transaction is the lock


@lru_cache(maxsize=256)
def numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, ...``."""
    parts = sql.split("?")
    return "".join(part + (f"${i}" if i < len(parts) else "")
                   for i, part in enumerate(parts, 1))


def _run_here(connection: sqlite3.Connection, steps: Steps[T]) -> T:
    """Drive ``steps`` on a sqlite3 connection (in the connection's thread)."""
    try:
        step = next(steps)
        while True:
            if isinstance(step, Fetch):
                result = connection.execute(step.sql, step.parameters).fetchall()
            else:
                connection.executemany(step.sql, step.rows)
                result = []
            step = steps.send(result)
    except StopIteration as done:
        return done.value


def transaction_here(connection: sqlite3.Connection, steps: Steps[T],
                      committed: Callable[[T], None] | None, durable: bool = True) -> T:
    """BEGIN IMMEDIATE, the statements, COMMIT (or ROLLBACK), in the
    connection's thread: a whole write transaction in one hop.

    ``durable``: COMMIT returns once the transaction is on disk
    (``synchronous=FULL``, the connection's setting).  Otherwise the
    transaction is committed with ``synchronous=NORMAL`` (no fsync of the
    WAL): it survives a crash of this process (it is in the WAL file, in
    the OS's cache) but not a power failure until the next durable commit
    or checkpoint syncs the WAL, which covers every frame before it.  The
    setting is back to FULL before this hop ends, so no other transaction
    on the connection ever runs with it."""
    if not durable:
        connection.execute("PRAGMA synchronous=NORMAL")
    try:
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = _run_here(connection, steps)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")  # FULL: on disk when this returns
    finally:
        if not durable:
            connection.execute("PRAGMA synchronous=FULL")
    if committed is not None:
        committed(result)
    return result


def _dialect_of(dialect: Any) -> Dialect:
    processor = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
    date: Callable[[dt.datetime], object] = processor or (lambda value: value)
    return Dialect(dialect.name == "sqlite", date)


def sqlite_dialect(db: Database) -> Dialect:
    """The ``Dialect`` of an SQLite database, for statements run on a
    connection of one's own (``writer_thread``)."""
    return _dialect_of(db.write_engine.dialect)


async def _drive(driver: Any, steps: Steps[T]) -> T:
    """Drive ``steps`` on an asyncpg connection, one round trip per statement."""
    try:
        step = next(steps)
        while True:
            if isinstance(step, Fetch):
                result = list(await driver.fetch(numbered(step.sql), *step.parameters))
            else:
                if step.rows:
                    await driver.executemany(numbered(step.sql), step.rows)
                result = []
            step = steps.send(result)
    except StopIteration as done:
        return done.value


async def run_transaction(db: Database, make_steps: Callable[[Dialect], Steps[T]],
                          committed: Callable[[T], None] | None = None, *,
                          durable: bool = True) -> T:
    """``make_steps(dialect)`` as a write transaction of its own, committed
    before this returns; rolled back when it raises.  On SQLite the whole
    transaction, BEGIN IMMEDIATE to COMMIT, is one hop to the write
    connection's thread (through SQLAlchemy's session it was three more).

    ``durable=False`` is for writes a power failure may lose but a crash of
    this process may not (flag changes, expunges): COMMIT does not wait for
    the disk (SQLite: ``synchronous=NORMAL`` for this transaction;
    PostgreSQL: ``SET LOCAL synchronous_commit = off``).  Both backends
    write their log in order, so the next durable commit makes every
    earlier one durable too.

    ``committed(result)`` runs on the event loop once COMMIT returned: on
    SQLite the database thread schedules it straight away, so whoever waits
    for the commit is answered before this coroutine has resumed (under
    load each resumption is a full turn of a busy event loop)."""
    if not db.is_sqlite:
        return await _pg_writer(db).run(make_steps(_dialect_of(db.write_engine.dialect)),
                                        committed, durable)
    async with db.write_engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        if driver is None:
            raise RuntimeError("no driver connection")
        dialect = _dialect_of(conn.dialect)
        steps = make_steps(dialect)
        if dialect.sqlite:
            notify = None
            if committed is not None:
                loop, done = asyncio.get_running_loop(), committed
                notify = lambda result: loop.call_soon_threadsafe(done, result)  # noqa: E731
            # aiosqlite has no public call for "run this in the connection's
            # thread"; its _execute is that call (aiosqlite 0.20-0.22).
            result: T = await driver._execute(transaction_here, driver._conn, steps, notify,
                                              durable)
            return result
        raise RuntimeError("unreachable: PostgreSQL runs on its writer thread")


class _PgWriter:
    """PostgreSQL's group-commit transactions on a thread with its own event
    loop and its own asyncpg connection.

    Driven on the server's event loop, every statement of a batch is an
    ``await`` that resumes only after a full turn of a loop busy with
    hundreds of sessions (a batch of ~10 writes took p50 71 ms where COMMIT
    alone takes 4 ms).  Here the statements follow each other on an idle
    loop, as SQLite's transaction runs in one hop on aiosqlite's thread;
    the caller is answered through ``call_soon_threadsafe`` after COMMIT."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever,
                                        name="schulhof-pg-writer", daemon=True)
        self._thread.start()
        self._conn: Any = None
        self._lock: asyncio.Lock | None = None

    async def _connect(self) -> Any:
        import asyncpg  # type: ignore[import-untyped]

        from directory.db import postgres_connect_args

        url = make_url(self._db.url)
        return await asyncpg.connect(
            host=url.host, port=url.port or 5432, user=url.username, password=url.password,
            database=url.database, **postgres_connect_args(self._db.url))

    async def _here(self, steps: Steps[T], notify: Callable[[T], None] | None,
                    durable: bool) -> T:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._conn is None or self._conn.is_closed():
                self._conn = await self._connect()
            async with self._conn.transaction():
                if not durable:
                    # This transaction only; the WAL is flushed in order, so
                    # the next synchronous commit flushes this one too.
                    await self._conn.execute("SET LOCAL synchronous_commit = off")
                result = await _drive(self._conn, steps)
        if notify is not None:
            notify(result)
        return result

    async def run(self, steps: Steps[T], committed: Callable[[T], None] | None,
                  durable: bool = True) -> T:
        notify: Callable[[T], None] | None = None
        if committed is not None:
            loop, done = asyncio.get_running_loop(), committed

            def notify(result: T) -> None:
                loop.call_soon_threadsafe(done, result)
        return await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(self._here(steps, notify, durable), self.loop))

    async def _close_here(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close(timeout=5)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(self._close_here(), self.loop))
        self.loop.call_soon_threadsafe(self.loop.stop)
        await asyncio.to_thread(self._thread.join, 10)


_PG_WRITERS: weakref.WeakKeyDictionary[Database, _PgWriter] = weakref.WeakKeyDictionary()


def _pg_writer(db: Database) -> _PgWriter:
    writer = _PG_WRITERS.get(db)
    if writer is None:
        writer = _PG_WRITERS[db] = _PgWriter(db)
        db.on_dispose(writer.close)
    return writer


class RawTransaction:
    """The driver connection of a session's open write transaction."""

    def __init__(self, driver: Any, dialect: Dialect) -> None:
        self._driver = driver
        self.dialect = dialect

    @classmethod
    async def of(cls, session: AsyncSession) -> RawTransaction:
        conn = await session.connection()
        sqlite = conn.dialect.name == "sqlite"
        if not sqlite:
            # asyncpg's adapter sends BEGIN with its first statement only.
            await conn.exec_driver_sql("SELECT 1")
        driver = (await conn.get_raw_connection()).driver_connection
        if driver is None:
            raise RuntimeError("no driver connection")
        raw = cls(driver, _dialect_of(conn.dialect))
        in_transaction = driver.in_transaction if sqlite else driver.is_in_transaction()
        if not in_transaction:
            raise RuntimeError("raw statements outside a transaction")
        return raw

    async def run(self, steps: Steps[T]) -> T:
        """The generator's result, its statements run in this transaction."""
        if self.dialect.sqlite:
            # aiosqlite has no public call for "run this in the connection's
            # thread"; its _execute is that call (aiosqlite 0.20-0.22).
            driver = self._driver
            return await driver._execute(_run_here, driver._conn, steps)
        return await _drive(self._driver, steps)
