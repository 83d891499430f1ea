"""``Database.rows_in``: one statement inside a session's transaction, on both
backends alike, whether or not the statement returns rows."""

from __future__ import annotations

from sqlalchemy import text

from directory.db import Database


async def test_statements_with_and_without_rows(db: Database) -> None:
    async with db.write() as session:
        await session.execute(text("CREATE TABLE rows_in_t (v INTEGER)"))
    async with db.write() as session:
        # A multi-row INSERT returns no rows: an empty list, not an error
        # (on PostgreSQL SQLAlchemy refuses to list a result without rows).
        assert await Database.rows_in(
            session, "INSERT INTO rows_in_t (v) VALUES (?), (?)", [1, 2]) == []
        assert await Database.rows_in(
            session, "UPDATE rows_in_t SET v = v + ? WHERE v = ?", [10, 2]) == []
        returned = await Database.rows_in(
            session, "INSERT INTO rows_in_t (v) VALUES (?) RETURNING v", [3])
        assert [tuple(row) for row in returned] == [(3,)]
        rows = await Database.rows_in(session, "SELECT v FROM rows_in_t ORDER BY v")
        assert [tuple(row) for row in rows] == [(1,), (3,), (12,)]
    assert await db.read_rows("SELECT v FROM rows_in_t ORDER BY v") == [(1,), (3,), (12,)]
