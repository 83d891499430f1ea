"""Reads across a user's rooms for /search, /notifications and /timestamp_to_event
(storage layer: the domain modules decide what is visible, this only queries)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from messenger.storage.events import StoredEvent, _stored
from messenger.storage.tables import EventRow, MembershipRow, ReceiptRow


def _within(readable: Mapping[str, int],
            floors: Mapping[str, int] | None = None) -> ColumnElement[bool]:
    """Events of the given rooms up to each room's readable position (and after its
    floor, where history before the user's arrival is hidden)."""
    floors = floors or {}
    return or_(*(and_(EventRow.room_id == room_id, EventRow.stream_ordering <= upto,
                      EventRow.stream_ordering >= floors.get(room_id, 0))
                 for room_id, upto in readable.items()))


async def first_membership(session: AsyncSession, room_id: str, user_id: str,
                           memberships: tuple[str, ...]) -> int | None:
    """The position of the user's first membership event in the room with one of
    ``memberships`` (their arrival, for history visibility)."""
    for position, text in await session.execute(
            select(EventRow.stream_ordering, EventRow.json).where(
                EventRow.room_id == room_id, EventRow.type == "m.room.member",
                EventRow.state_key == user_id).order_by(EventRow.stream_ordering)):
        content = json.loads(text).get("content") or {}
        if content.get("membership") in memberships:
            return position
    return None


def _like_escaped(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def message_candidates(session: AsyncSession, readable: Mapping[str, int],
                             words: list[str], *, before: int | None, limit: int,
                             floors: Mapping[str, int] | None = None) -> list[StoredEvent]:
    """Newest first: message events of the readable rooms whose JSON contains every
    word (case-insensitively); the caller checks the words are in the body."""
    if not readable:
        return []
    query = select(EventRow).where(EventRow.type == "m.room.message",
                                   EventRow.redacted.is_(False), _within(readable, floors))
    for word in words:
        query = query.where(EventRow.json.ilike(f"%{_like_escaped(word)}%", escape="\\"))
    if before is not None:
        query = query.where(EventRow.stream_ordering < before)
    rows = await session.scalars(query.order_by(EventRow.stream_ordering.desc()).limit(limit))
    return [_stored(r) for r in rows]


async def events_by_others(session: AsyncSession, readable: Mapping[str, int], user_id: str,
                           types: list[str], *, before: int | None,
                           limit: int) -> list[StoredEvent]:
    """Newest first: events of ``types`` in the readable rooms not sent by ``user_id``."""
    if not readable:
        return []
    query = select(EventRow).where(EventRow.type.in_(types), EventRow.sender != user_id,
                                   _within(readable))
    if before is not None:
        query = query.where(EventRow.stream_ordering < before)
    rows = await session.scalars(query.order_by(EventRow.stream_ordering.desc()).limit(limit))
    return [_stored(r) for r in rows]


async def read_positions(session: AsyncSession, user_id: str,
                         room_ids: list[str]) -> dict[str, int]:
    """room -> stream position of the event the user's newest read receipt points at."""
    if not room_ids:
        return {}
    rows = await session.execute(
        select(ReceiptRow.room_id, EventRow.stream_ordering)
        .join(EventRow, EventRow.event_id == ReceiptRow.event_id)
        .where(ReceiptRow.user_id == user_id, ReceiptRow.room_id.in_(room_ids),
               ReceiptRow.receipt_type.in_(["m.read", "m.read.private"])))
    out: dict[str, int] = {}
    for room_id, position in rows:
        out[room_id] = max(out.get(room_id, 0), position)
    return out


async def event_near(session: AsyncSession, room_id: str, ts: int, *, forward: bool,
                     upto: int) -> StoredEvent | None:
    """The room's event closest to ``ts``: the first at or after it (forward) or the
    last at or before it (backward), among positions <= upto."""
    query = select(EventRow).where(EventRow.room_id == room_id,
                                   EventRow.stream_ordering <= upto)
    if forward:
        query = query.where(EventRow.origin_server_ts >= ts).order_by(
            EventRow.origin_server_ts.asc(), EventRow.stream_ordering.asc())
    else:
        query = query.where(EventRow.origin_server_ts <= ts).order_by(
            EventRow.origin_server_ts.desc(), EventRow.stream_ordering.desc())
    row = await session.scalar(query.limit(1))
    return _stored(row) if row is not None else None


async def state_history(session: AsyncSession, room_id: str, event_type: str,
                        state_key: str) -> list[StoredEvent]:
    """Every state event of one key in the room, oldest first (history visibility:
    the settings and a user's memberships over time)."""
    rows = await session.scalars(select(EventRow).where(
        EventRow.room_id == room_id, EventRow.type == event_type,
        EventRow.state_key == state_key).order_by(EventRow.stream_ordering))
    return [_stored(r) for r in rows]


async def member_changes_between(session: AsyncSession, room_ids: list[str], after: int,
                                 upto: int) -> list[tuple[str, str, str]]:
    """(room, user, membership) of the member events in (after, upto] of the rooms."""
    if not room_ids or upto <= after:
        return []
    rows = await session.execute(select(EventRow.room_id, EventRow.state_key, EventRow.json)
                                 .where(EventRow.room_id.in_(room_ids),
                                        EventRow.type == "m.room.member",
                                        EventRow.stream_ordering > after,
                                        EventRow.stream_ordering <= upto))
    out = []
    for room_id, user_id, body in rows:
        membership = (json.loads(body).get("content") or {}).get("membership")
        if isinstance(user_id, str) and isinstance(membership, str):
            out.append((room_id, user_id, membership))
    return out


async def members_of_rooms(session: AsyncSession, room_ids: list[str]) -> set[str]:
    """Everyone with a membership (any) in the rooms."""
    if not room_ids:
        return set()
    return set(await session.scalars(select(MembershipRow.user_id).where(
        MembershipRow.room_id.in_(room_ids)).distinct()))


async def member_state_keys(session: AsyncSession, room_id: str) -> list[str]:
    """Every user with a member event in the room, at any time (history visibility
    for a server: all of its users' memberships over time)."""
    rows = await session.scalars(select(EventRow.state_key).distinct().where(
        EventRow.room_id == room_id, EventRow.type == "m.room.member"))
    return sorted(key for key in rows if isinstance(key, str))
