"""Statements straight to the driver inside a running write transaction
(storage layer): aiosqlite on SQLite, asyncpg on PostgreSQL.

Through SQLAlchemy's async layer every statement costs several hops to
aiosqlite's thread (each waiting for the GIL behind a busy event loop) plus
compiling and cache-keying; the group-committed writes of the mail store
hold the single writer for as few of those as they can.  SQL is written
with ``?`` placeholders; for PostgreSQL they become ``$1, $2, ...``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession


class _SqliteDriver(Protocol):  # aiosqlite.Connection, as far as used here
    in_transaction: bool

    async def execute_fetchall(self, sql: str, parameters: Sequence[object]
                               ) -> Sequence[Sequence[Any]]: ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> object: ...


class _PostgresDriver(Protocol):  # asyncpg.Connection, as far as used here
    def is_in_transaction(self) -> bool: ...

    async def fetch(self, sql: str, *parameters: object) -> Sequence[Sequence[Any]]: ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> object: ...


@lru_cache(maxsize=256)
def numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, ...``."""
    parts = sql.split("?")
    return "".join(part + (f"${i}" if i < len(parts) else "")
                   for i, part in enumerate(parts, 1))


class RawTransaction:
    """The driver connection of a session's open write transaction."""

    def __init__(self, driver: Any, sqlite: bool) -> None:
        self._driver = driver
        self.sqlite = sqlite

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
        raw = cls(driver, sqlite)
        if not raw.in_transaction():
            raise RuntimeError("raw statements outside a transaction")
        return raw

    def in_transaction(self) -> bool:
        if self.sqlite:
            return bool(self._driver.in_transaction)
        return bool(self._driver.is_in_transaction())

    def placeholders(self, values: Sequence[object]) -> tuple[str, list[object]]:
        """``IN (?, ?, ...)`` on SQLite, ``= ANY(?)`` with one array on PostgreSQL."""
        if self.sqlite:
            return f"IN ({','.join('?' * len(values))})", list(values)
        return "= ANY(?)", [list(values)]

    async def fetch(self, sql: str, parameters: Sequence[object] = ()) -> list[Sequence[Any]]:
        """Rows of a statement (also of ``UPDATE ... RETURNING``)."""
        if self.sqlite:
            return list(await self._driver.execute_fetchall(sql, parameters))
        return list(await self._driver.fetch(numbered(sql), *parameters))

    async def execute(self, sql: str, parameters: Sequence[object] = ()) -> None:
        await self.fetch(sql, parameters)

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        if rows:
            await self._driver.executemany(sql if self.sqlite else numbered(sql), rows)
