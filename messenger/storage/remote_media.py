"""Rows of other servers' media fetched over federation and kept here (migration
branch ``fedmedia``); the bytes share the content-addressed files of local media."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Select, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from directory.schema import Base, UtcDateTime
from messenger.storage.tables import EventRow, MembershipRow

PRESENT = ("join", "invite")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RemoteMediaRow(Base):
    __tablename__ = "matrix_remote_media"

    server_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    media_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    content_type: Mapped[str] = mapped_column(String(255))
    upload_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    size: Mapped[int] = mapped_column(BigInteger)
    fetched_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=_now)


async def get(session: AsyncSession, server_name: str, media_id: str) -> RemoteMediaRow | None:
    return await session.get(RemoteMediaRow, (server_name, media_id))


async def add(session: AsyncSession, *, server_name: str, media_id: str, sha256: str,
              content_type: str, upload_name: str | None, size: int) -> None:
    await session.merge(RemoteMediaRow(server_name=server_name, media_id=media_id,
                                       sha256=sha256, content_type=content_type,
                                       upload_name=upload_name, size=size))


def _rooms_with_server(server_name: str) -> Select[str]:
    """Rooms where a user of ``server_name`` is joined or invited."""
    return select(MembershipRow.room_id).where(
        MembershipRow.user_id.like(f"%:{server_name}"), MembershipRow.membership.in_(PRESENT))


async def referenced_in_rooms_with_server(session: AsyncSession, uri: str, server_name: str,
                                          after: int) -> bool:
    """Whether an event after ``after`` in a room shared with ``server_name``'s users
    names ``uri``."""
    found = await session.scalar(select(EventRow.event_id).where(
        EventRow.room_id.in_(_rooms_with_server(server_name)), EventRow.stream_ordering > after,
        EventRow.json.contains(f'"{uri}"', autoescape=True)).limit(1))
    return found is not None


async def encrypted_post_in_rooms_with_server(session: AsyncSession, sender: str,
                                              since_ms: int, server_name: str,
                                              after: int) -> bool:
    """Whether ``sender`` posted an encrypted event since ``since_ms`` into a room
    shared with ``server_name``'s users."""
    found = await session.scalar(select(EventRow.event_id).where(
        EventRow.room_id.in_(_rooms_with_server(server_name)), EventRow.stream_ordering > after,
        EventRow.sender == sender, EventRow.type == "m.room.encrypted",
        EventRow.origin_server_ts >= since_ms).limit(1))
    return found is not None


async def encrypted_from_server_in_rooms_of(session: AsyncSession, server_name: str,
                                            user_id: str) -> bool:
    """Whether a user of ``server_name`` posted an encrypted event into a room
    ``user_id`` is joined to or invited into (it may carry any of their files)."""
    rooms = select(MembershipRow.room_id).where(MembershipRow.user_id == user_id,
                                                MembershipRow.membership.in_(PRESENT))
    found = await session.scalar(select(EventRow.event_id).where(
        EventRow.room_id.in_(rooms), EventRow.sender.like(f"%:{server_name}"),
        EventRow.type == "m.room.encrypted").limit(1))
    return found is not None
