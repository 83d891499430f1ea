"""Batched reads over many rooms at once for sliding sync room lists (storage layer):
one query for all rooms of a window rather than one per room.

Bump stamps (MSC4186 ``bump_stamp``): the stream position of a room's newest
event of a type that moves it up in a client's room list.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import Database
from messenger.storage.events import StoredEvent, _stored, stored_event
from messenger.storage.tables import EventRow, RoomStateRow

# Synapse's defaults (MSC4186 leaves the choice to the server): what a person sees
# as "new in this room"; state changes and reactions do not reorder the list.
BUMP_EVENT_TYPES = frozenset({
    "m.room.create", "m.room.message", "m.room.encrypted", "m.sticker", "m.call.invite",
    "m.poll.start", "m.beacon_info"})

# SQLite limits bound parameters (999 on old builds): chunk long IN lists.
_CHUNK = 500


def _chunks(items: Iterable[str]) -> Iterable[list[str]]:
    items = list(items)
    for n in range(0, len(items), _CHUNK):
        yield items[n:n + _CHUNK]


async def bump_stamps(session: AsyncSession, room_ids: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for chunk in _chunks(room_ids):
        rows = await session.execute(
            select(EventRow.room_id, func.max(EventRow.stream_ordering))
            .where(EventRow.room_id.in_(chunk), EventRow.type.in_(BUMP_EVENT_TYPES))
            .group_by(EventRow.room_id))
        out.update({room_id: position for room_id, position in rows})
    return out


# The columns ``_event`` reads, of ``matrix_events`` as ``e``.
_EVENT_COLUMNS = "e.event_id, e.stream_ordering, e.room_id, e.json, e.redacted_by"


def _event(row: Any) -> StoredEvent:
    return stored_event(row[0], row[1], row[2], row[3], row[4])


def _marks(values: Collection[Any]) -> str:
    return ", ".join("?" * len(values))


# The reads below are plain SQL in one driver call each (``Database.rows_in``):
# an initial sliding sync of many rooms makes them with hundreds of rows, where
# ORM objects and the four driver hops of a SQLAlchemy statement on SQLite
# cost more than the statement.

async def latest_events(session: AsyncSession, room_ids: Iterable[str], limit: int,
                        upto: int) -> dict[str, list[StoredEvent]]:
    """room id -> its newest ``limit`` events at or before ``upto``, oldest first."""
    out: dict[str, list[StoredEvent]] = {}
    if limit <= 0:
        return out
    for chunk in _chunks(room_ids):
        rows = await Database.rows_in(
            session,
            f"SELECT {_EVENT_COLUMNS} FROM matrix_events e JOIN ("
            f"SELECT event_id, row_number() OVER (PARTITION BY room_id "
            f"ORDER BY stream_ordering DESC) AS n FROM matrix_events "
            f"WHERE room_id IN ({_marks(chunk)}) AND stream_ordering <= ?) ranked "
            f"ON ranked.event_id = e.event_id WHERE ranked.n <= ? "
            f"ORDER BY e.stream_ordering", [*chunk, upto, limit])
        for row in rows:
            event = _event(row)
            out.setdefault(event.room_id, []).append(event)
    return out


async def current_state(session: AsyncSession, room_ids: Iterable[str],
                        types: Collection[str] | None, members: Collection[str] | None,
                        ) -> dict[str, dict[tuple[str, str], StoredEvent]]:
    """The current state of the rooms, restricted to ``types`` (None: all types but
    members) and to the member events of ``members`` (None: all members)."""
    out: dict[str, dict[tuple[str, str], StoredEvent]] = {}
    conditions: list[str] = []
    values: list[Any] = []
    if types is None:
        conditions.append("s.type != 'm.room.member'")
    elif types:
        conditions.append(f"s.type IN ({_marks(types)})")
        values += types
    if members is None:
        conditions.append("s.type = 'm.room.member'")
    elif members:
        conditions.append(f"(s.type = 'm.room.member' AND s.state_key IN ({_marks(members)}))")
        values += members
    if not conditions:
        return out
    for chunk in _chunks(room_ids):
        rows = await Database.rows_in(
            session,
            f"SELECT {_EVENT_COLUMNS}, e.type, e.state_key FROM matrix_events e "
            f"JOIN matrix_room_state s ON s.event_id = e.event_id "
            f"WHERE s.room_id IN ({_marks(chunk)}) AND ({' OR '.join(conditions)})",
            [*chunk, *values])
        for row in rows:
            out.setdefault(row[2], {})[(row[5], row[6] or "")] = _event(row)
    return out


async def members(session: AsyncSession, room_ids: Iterable[str],
                  ) -> dict[str, list[tuple[str, str, str]]]:
    """room id -> (user id, membership, event id) of its joined and invited members."""
    out: dict[str, list[tuple[str, str, str]]] = {}
    for chunk in _chunks(room_ids):
        rows = await Database.rows_in(
            session,
            f"SELECT room_id, user_id, membership, event_id FROM matrix_room_memberships "
            f"WHERE room_id IN ({_marks(chunk)}) AND membership IN ('join', 'invite') "
            f"ORDER BY room_id, user_id", chunk)
        for room_id, user_id, membership, event_id in rows:
            out.setdefault(room_id, []).append((user_id, membership, event_id))
    return out


async def state_changed_since(session: AsyncSession, room_id: str, after: int, upto: int,
                              ) -> list[StoredEvent]:
    """Current state events of the room set in (after, upto]."""
    rows = await session.scalars(
        select(EventRow).join(RoomStateRow, RoomStateRow.event_id == EventRow.event_id)
        .where(RoomStateRow.room_id == room_id, EventRow.stream_ordering > after,
               EventRow.stream_ordering <= upto).order_by(EventRow.stream_ordering))
    return [_stored(r) for r in rows]


async def create_contents(session: AsyncSession, room_ids: Iterable[str],
                          ) -> dict[str, dict[str, Any]]:
    """room id -> the content of its m.room.create event (room type, MSC1772)."""
    out: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(room_ids):
        rows = await session.scalars(select(EventRow).where(
            EventRow.room_id.in_(chunk), EventRow.type == "m.room.create",
            EventRow.state_key == ""))
        for row in rows:
            out[row.room_id] = dict(_stored(row).pdu.get("content", {}))
    return out
