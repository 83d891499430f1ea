"""Room aliases (``#name:server`` -> room id)."""

from __future__ import annotations

from sqlalchemy import delete as sql_delete
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from messenger.storage.tables import RoomAliasRow


async def get(session: AsyncSession, alias: str) -> RoomAliasRow | None:
    return await session.get(RoomAliasRow, alias)


async def resolve(session: AsyncSession, alias: str) -> str | None:
    row = await session.get(RoomAliasRow, alias)
    return row.room_id if row else None


async def create(session: AsyncSession, alias: str, room_id: str, creator: str) -> None:
    session.add(RoomAliasRow(alias=alias, room_id=room_id, creator=creator))
    await session.flush()


async def delete(session: AsyncSession, alias: str) -> None:
    await session.execute(sql_delete(RoomAliasRow).where(RoomAliasRow.alias == alias))


async def of_room(session: AsyncSession, room_id: str) -> list[str]:
    """The local aliases pointing at ``room_id``."""
    rows = await session.scalars(select(RoomAliasRow.alias).where(
        RoomAliasRow.room_id == room_id).order_by(RoomAliasRow.alias))
    return list(rows)
