"""The link between a directory group and the room the server keeps for it."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from messenger.storage.tables import EventRow, GroupRoomRow


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


async def membership_before(session: AsyncSession, room_id: str, user_id: str,
                            stream_ordering: int) -> str | None:
    """``user_id``'s membership in the room just before the event at ``stream_ordering``."""
    text = await session.scalar(select(EventRow.json).where(
        EventRow.room_id == room_id, EventRow.type == "m.room.member",
        EventRow.state_key == user_id, EventRow.stream_ordering < stream_ordering)
        .order_by(EventRow.stream_ordering.desc()).limit(1))
    if text is None:
        return None
    membership = json.loads(text).get("content", {}).get("membership")
    return membership if isinstance(membership, str) else None
