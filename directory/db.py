"""The database engine, shared by every package (SQLAlchemy 2.x, async API).

SQLite is the embedded default; PostgreSQL (asyncpg) is the scale-out backend.
SQLite allows one writer at a time, so writes go through their own engine with
a single connection and ``BEGIN IMMEDIATE``: writers queue in the pool instead
of failing with "database is locked" halfway through a transaction.  Readers
use a separate pool and see WAL snapshots without blocking the writer.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import CursorResult, Result, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import PoolResetState
from sqlalchemy.util import await_only

from directory import request_timing

# Every SQLite connection that writes runs with these.  FULL: a commit is on
# disk when COMMIT returns (we answer 250 after it).
SQLITE_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
                  "PRAGMA foreign_keys=ON", "PRAGMA busy_timeout=30000")


def _sqlite_engine(url: str, *, immediate: bool, pool_size: int, echo: bool) -> AsyncEngine:
    engine = create_async_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=0, pool_timeout=120,
        hide_parameters=True,
        # The pool's rollback-on-return is one more hop to aiosqlite's thread
        # for every checkout, almost always for nothing (the transaction was
        # committed); ``_on_reset`` rolls back only a connection still in one.
        pool_reset_on_return=None,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN is ours (below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "reset")
    def _on_reset(dbapi_connection: Any, _record: Any, state: PoolResetState) -> None:
        # sqlite3's in_transaction is read here without a hop (no thread check).
        if not state.asyncio_safe or state.terminate_only:
            return
        try:
            open_transaction = dbapi_connection.driver_connection.in_transaction
        except ValueError:  # aiosqlite: the connection is already closed (shutdown)
            return
        if open_transaction:
            dbapi_connection.rollback()

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Straight to aiosqlite: one hop to its thread, where exec_driver_sql's
        # cursor, execute and close are three (every transaction begins here).
        await_only(conn.connection.driver_connection.execute_fetchall(begin))

    if immediate:
        # The rows of an executemany INSERT (an ORM flush of several events, say)
        # as multi-row INSERTs: sqlite3 steps an executemany row by row, and each
        # step hands the GIL back and waits to take it again behind the busy
        # event loop (up to the 5 ms switch interval).
        engine.sync_engine.dialect.use_insertmanyvalues_wo_returning = True

    return engine


_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", ""})


def postgres_connect_args(url: str) -> dict[str, Any]:
    """No TLS negotiation with a server on this machine, unless the URL asks for it.

    asyncpg's default (sslmode=prefer) first asks the server for TLS; on
    loopback that is a wasted round trip per connection, and a connection
    cancelled during that exchange (at shutdown) leaves an unretrieved error.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or "ssl" in parsed.query or (
            "sslmode" in parsed.query):
        return {}
    return {"ssl": False} if (parsed.host or "") in _LOOPBACK_HOSTS else {}


class Database:
    """Engines and session factories for one school's database."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self.backend = make_url(url).get_backend_name()
        if self.is_sqlite:
            self.write_engine = _sqlite_engine(url, immediate=True, pool_size=1, echo=echo)
            self.read_engine = _sqlite_engine(url, immediate=False, pool_size=8, echo=echo)
        else:
            # hide_parameters: a database error must never print a hash or a body.
            engine = create_async_engine(url, echo=echo, pool_size=10, max_overflow=20,
                                         hide_parameters=True,
                                         connect_args=postgres_connect_args(url))
            self.write_engine = self.read_engine = engine
        self._write_sessions = async_sessionmaker(self.write_engine, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)
        self._inline_path = _sqlite_file(url) if self.is_sqlite else None
        self._inline = threading.local()
        self._inline_connections: list[sqlite3.Connection] = []
        self._inline_lock = threading.Lock()

    @property
    def is_sqlite(self) -> bool:
        return self.backend == "sqlite"

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: committed when the block ends, rolled back on error."""
        async with self._write_sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only transaction (a consistent snapshot)."""
        async with self._read_sessions() as session, session.begin():
            yield session

    async def read_rows(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
        """One read statement in one driver call on a pooled read connection.

        Through SQLAlchemy's async layer a read costs BEGIN, execute, fetch and
        ROLLBACK: on SQLite about eight hops to aiosqlite's thread (each waiting
        for the GIL behind a busy event loop), on PostgreSQL three round trips.
        Here it is one: aiosqlite's ``execute_fetchall`` / asyncpg's ``fetch``,
        outside any transaction (the read connections autocommit), so the
        statement is its own snapshot.  ``sql`` uses ``?`` placeholders; for
        PostgreSQL they become ``$1, $2, ...``.  Values come as the driver gives
        them (no column type's conversion).  The pool wait and the statement
        count as ``pool`` and ``sql`` of the request (``request_timing``)."""
        started = time.perf_counter()
        async with self.read_engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            checked_out = time.perf_counter()
            request_timing.add("pool", checked_out - started)
            try:
                if self.is_sqlite:
                    return list(await raw.execute_fetchall(  # type: ignore[union-attr]
                        sql, parameters))
                return list(await raw.fetch(_numbered(sql), *parameters))  # type: ignore[union-attr]
            finally:
                request_timing.add("sql", time.perf_counter() - checked_out)

    @staticmethod
    async def rows_in(session: AsyncSession, sql: str,
                      parameters: Sequence[Any] = ()) -> list[Any]:
        """One statement inside ``session``'s transaction: on SQLite in one driver
        call, as ``read_rows`` does outside one (one hop to aiosqlite's thread
        instead of four: cursor, execute, fetch, close); on PostgreSQL through the
        session (whose driver starts the transaction).  ``sql`` uses ``?``
        placeholders.  Pending ORM objects are not flushed first."""
        connection = await session.connection()
        if connection.dialect.name == "sqlite":
            raw = (await connection.get_raw_connection()).driver_connection
            return list(await raw.execute_fetchall(sql, parameters))  # type: ignore[union-attr]
        parts = sql.split("?")
        named = "".join(part + (f":p{i}" if i < len(parts) - 1 else "")
                        for i, part in enumerate(parts))
        result = await connection.execute(text(named),
                                          {f"p{i}": v for i, v in enumerate(parameters)})
        # An INSERT or UPDATE without RETURNING has no rows to list (SQLAlchemy
        # raises ResourceClosedError when asked for them).
        return list(result) if result.returns_rows else []

    @property
    def sqlite_file(self) -> str | None:
        """The SQLite database's file; None on PostgreSQL and for an SQLite
        database without one (in memory, or a URL with options)."""
        return self._inline_path

    @property
    def reads_inline(self) -> bool:
        """Whether ``read_rows_small`` runs on the caller's thread (SQLite
        with a file): it then completes without suspending the caller."""
        return self._inline_path is not None

    async def read_rows_small(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
        """``read_rows`` for a small indexed read (a mailbox row, a FETCH
        chunk's records, a few header blocks).  On SQLite it runs right here,
        on the caller's thread, on a read connection of that thread's own:
        reading a few cached pages takes microseconds, while the hop to
        aiosqlite's thread and back (a queue, a thread wake-up, the GIL
        handed over and back, a future resolved across threads) cost more
        CPU than the statement, and under load each hop waited up to a GIL
        switch interval (5 ms) behind the busy event loop.  WAL readers
        never wait for the writer.  Not for statements that scan much or
        return large values: the event loop waits for them.  On PostgreSQL
        (and an SQLite database without a file) this is ``read_rows``."""
        if self._inline_path is None:
            return await self.read_rows(sql, parameters)
        started = time.perf_counter()
        try:
            return self._inline_connection().execute(sql, parameters).fetchall()
        except sqlite3.OperationalError as error:
            # Busy (a WAL reset or recovery holds the read lock for a moment): the
            # event loop must not wait for it; the pool's thread may.
            if "locked" not in str(error) and "busy" not in str(error):
                raise
        finally:
            request_timing.add("sql", time.perf_counter() - started)
        return await self.read_rows(sql, parameters)

    def _inline_connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._inline, "connection", None)
        if connection is None:
            assert self._inline_path is not None
            # Autocommit (isolation_level None): each statement is its own
            # snapshot, as on the pooled read connections.  The connection is
            # used by this thread only; check_same_thread is off so that
            # ``dispose`` may close it from whichever thread disposes.
            connection = sqlite3.connect(self._inline_path, isolation_level=None,
                                         check_same_thread=False)
            # No waiting on this thread (it is the event loop's): a busy read
            # goes to the pool instead (read_rows_small).
            connection.execute("PRAGMA busy_timeout=0")
            connection.execute("PRAGMA query_only=ON")
            with self._inline_lock:
                self._inline_connections.append(connection)
            self._inline.connection = connection
        return connection

    def on_dispose(self, close: Callable[[], Awaitable[None]]) -> None:
        """``close()`` runs when the database is disposed (a connection of one's own)."""
        self._closers.append(close)

    async def dispose(self) -> None:
        closers, self._closers = self._closers, []
        for close in closers:
            await close()
        with self._inline_lock:
            inline, self._inline_connections = self._inline_connections, []
            self._inline = threading.local()
        for connection in inline:
            connection.close()
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()


def _sqlite_file(url: str) -> str | None:
    """The file of an SQLite URL; None for an in-memory database or a URL
    with options (those stay on the pooled connections)."""
    parsed = make_url(url)
    path = parsed.database
    if not path or path == ":memory:" or path.startswith("file:") or parsed.query:
        return None
    return path


def _numbered(sql: str) -> str:
    parts = sql.split("?")
    return "".join(part + (f"${i}" if i < len(parts) else "")
                   for i, part in enumerate(parts, 1))


def affected_rows(result: Result[*tuple[object, ...]]) -> int:
    """The rows an INSERT, UPDATE or DELETE matched.

    ``AsyncSession.execute`` is typed to return a plain ``Result`` whatever the
    statement; for DML it is a ``CursorResult``, which alone has ``rowcount``.
    """
    if not isinstance(result, CursorResult):
        raise TypeError(f"not the result of a DML statement: {type(result).__name__}")
    return result.rowcount
