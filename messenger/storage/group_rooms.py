"""The link between a directory group and the room the server keeps for it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from messenger.storage.tables import GroupRoomRow


async def room_of(session: AsyncSession, group_id: int) -> str | None:
    row = await session.get(GroupRoomRow, group_id)
    return row.room_id if row else None


async def group_of(session: AsyncSession, room_id: str) -> int | None:
    return await session.scalar(select(GroupRoomRow.group_id)
                                .where(GroupRoomRow.room_id == room_id))


async def link(session: AsyncSession, group_id: int, room_id: str) -> None:
    session.add(GroupRoomRow(group_id=group_id, room_id=room_id))
    await session.flush()


async def all_links(session: AsyncSession) -> dict[int, str]:
    rows = await session.execute(select(GroupRoomRow.group_id, GroupRoomRow.room_id))
    return {group_id: room_id for group_id, room_id in rows}
