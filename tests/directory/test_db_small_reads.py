"""``Database.read_rows_small``: a small read on SQLite runs on the caller's
thread (no hop to the pool's thread) and still sees every commit that
returned before it; on PostgreSQL it is ``read_rows``."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from sqlalchemy import text

from directory.db import Database


async def _commit_value(db: Database, value: int) -> None:
    async with db.write() as session:
        await session.execute(text("DELETE FROM small_reads"))
        await session.execute(text("INSERT INTO small_reads (v) VALUES (:v)"), {"v": value})


async def test_small_reads_see_every_commit_before_them(db: Database) -> None:
    async with db.write() as session:
        await session.execute(text("CREATE TABLE small_reads (v INTEGER)"))
    for value in range(20):
        await _commit_value(db, value)
        assert await db.read_rows_small("SELECT v FROM small_reads") == \
            await db.read_rows("SELECT v FROM small_reads") == [(value,)]
    assert await db.read_rows_small("SELECT v FROM small_reads WHERE v = ?", [19]) == [(19,)]


async def test_small_reads_need_no_pooled_connection_on_sqlite(db: Database) -> None:
    """With every pooled read connection held (8 on SQLite), a small read
    still answers at once: it runs on this thread's own connection."""
    async with db.write() as session:
        await session.execute(text("CREATE TABLE small_reads (v INTEGER)"))
    await _commit_value(db, 7)
    if not db.is_sqlite:
        assert await db.read_rows_small("SELECT v FROM small_reads") == [(7,)]
        return
    async with contextlib.AsyncExitStack() as held:
        for _ in range(8):
            await held.enter_async_context(db.read_engine.connect())
        rows = await asyncio.wait_for(db.read_rows_small("SELECT v FROM small_reads"), 5)
        assert rows == [(7,)]
        # Another thread (another event loop) gets a connection of its own.
        other: list[object] = []
        thread = threading.Thread(target=lambda: other.append(asyncio.run(
            db.read_rows_small("SELECT v FROM small_reads"))))
        thread.start()
        thread.join(10)
        assert other == [[(7,)]]


async def test_small_reads_are_read_only(db: Database) -> None:
    async with db.write() as session:
        await session.execute(text("CREATE TABLE small_reads (v INTEGER)"))
    if db.is_sqlite:
        try:
            await db.read_rows_small("INSERT INTO small_reads (v) VALUES (1)")
        except Exception as error:
            assert "readonly" in str(error).lower()
        else:
            raise AssertionError("a small read wrote")
    assert await db.read_rows("SELECT v FROM small_reads") == []


class _BusyConnection:
    """Stands for this thread's read connection while SQLite answers "busy"."""

    def execute(self, sql: str, parameters: object = ()) -> object:
        import sqlite3
        raise sqlite3.OperationalError("database is locked")


async def test_a_busy_small_read_goes_to_the_pool_instead_of_waiting(db: Database) -> None:
    """The inline connection never waits (busy_timeout 0: it is the event loop's
    thread); a read that finds the database busy is answered by the pool."""
    async with db.write() as session:
        await session.execute(text("CREATE TABLE small_reads (v INTEGER)"))
    await _commit_value(db, 3)
    if not db.is_sqlite:
        return
    assert db._inline_connection().execute("PRAGMA busy_timeout").fetchone() == (0,)
    db._inline.connection = _BusyConnection()
    try:
        assert await db.read_rows_small("SELECT v FROM small_reads") == [(3,)]
    finally:
        del db._inline.connection
