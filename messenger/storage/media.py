"""Rows of uploaded media (the bytes are files, see messenger.media)."""

from __future__ import annotations

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from directory.schema import AccountRow
from messenger.storage.tables import EventRow, MediaRow, MembershipRow

PRESENT = ("join", "invite")


async def add(session: AsyncSession, *, media_id: str, sha256: str, content_type: str,
              upload_name: str | None, size: int, account_id: int) -> None:
    position = await session.scalar(select(func.max(EventRow.stream_ordering)))
    session.add(MediaRow(media_id=media_id, sha256=sha256, content_type=content_type,
                         upload_name=upload_name, size=size, account_id=account_id,
                         stream_position=position or 0))
    await session.flush()


async def get(session: AsyncSession, media_id: str) -> MediaRow | None:
    return await session.get(MediaRow, media_id)


async def uploader_login(session: AsyncSession, row: MediaRow) -> str | None:
    return await session.scalar(select(AccountRow.login).where(AccountRow.id == row.account_id))


def _rooms_of(user_id: str) -> Select[str]:
    return select(MembershipRow.room_id).where(MembershipRow.user_id == user_id,
                                               MembershipRow.membership.in_(PRESENT))


async def referenced_in_rooms_of(session: AsyncSession, uri: str, user_id: str,
                                 after: int) -> bool:
    """Whether an event after stream position ``after`` in a room ``user_id`` is joined
    to or invited into names ``uri`` (message attachments, room and member avatars:
    unencrypted content).  The room/stream index keeps the scan to newer events."""
    found = await session.scalar(select(EventRow.event_id).where(
        EventRow.room_id.in_(_rooms_of(user_id)), EventRow.stream_ordering > after,
        EventRow.json.contains(f'"{uri}"', autoescape=True)).limit(1))
    return found is not None


async def encrypted_post_in_rooms_of(session: AsyncSession, sender: str, since_ms: int,
                                     user_id: str, after: int) -> bool:
    """Whether ``sender`` posted an encrypted event at or after ``since_ms`` into a room
    ``user_id`` is joined to or invited into (the server cannot read which file it
    carries)."""
    found = await session.scalar(select(EventRow.event_id).where(
        EventRow.room_id.in_(_rooms_of(user_id)), EventRow.stream_ordering > after,
        EventRow.sender == sender,
        EventRow.type == "m.room.encrypted", EventRow.origin_server_ts >= since_ms).limit(1))
    return found is not None
