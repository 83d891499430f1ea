"""Rows a write transaction gathers and writes together just before its commit.

A batch of message sends (``messenger.rooms.batching``) stores per message an
event row, maybe a relation row, its transaction id and a push-action row per
notified member, and moves each room's forward extremity.  Written as they
come, through the ORM or SQLAlchemy Core, each is a few hops to aiosqlite's
thread; gathered, they are one executemany per table, all in one hop
(``Database.write_rows``).  The storage functions that write such rows look
for the gatherer on the session (``gathered``) and write at once without one.

Statements run in the order they were first added: an event's own row always
comes first, so rows referring to events (relations) follow the events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import Database

_KEY = "schulhof.gathered_rows"


class GatheredRows:
    """Rows per statement, in the order the statements were first used."""

    def __init__(self) -> None:
        self._rows: dict[str, list[Sequence[Any]]] = {}

    def add(self, sql: str, row: Sequence[Any]) -> None:
        self._rows.setdefault(sql, []).append(row)

    async def write(self, session: AsyncSession) -> None:
        """Everything gathered, in ``session``'s transaction; the gatherer is empty after."""
        rows, self._rows = self._rows, {}
        await Database.write_rows(session, list(rows.items()))


def gather(session: AsyncSession) -> GatheredRows:
    """From now on the rows of ``session`` that can wait are gathered (see ``write``)."""
    rows = GatheredRows()
    session.info[_KEY] = rows
    return rows


def gathered(session: AsyncSession) -> GatheredRows | None:
    """The session's gatherer, if its writer asked for one."""
    rows = session.info.get(_KEY)
    return rows if isinstance(rows, GatheredRows) else None


def insert_sql(table: Table, columns: Sequence[str]) -> str:
    """``INSERT INTO table (columns) VALUES (?, ...)`` (names from the table: no drift)."""
    for name in columns:
        table.c[name]  # a missing column fails here, at import
    return (f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})")
