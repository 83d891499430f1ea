"""Queries on events, room state and memberships (storage layer).

Stream orderings are handed out as max + 1 inside the writer's transaction;
the room service serialises writers, and the unique constraint on
``stream_ordering`` makes a second writer fail rather than reuse a position,
so a /sync token never skips an event that commits later.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import Database
from messenger.events.canonical import canonical_json
from messenger.storage.relations import add_relation, forget_relation
from messenger.storage.tables import EventRow, MembershipRow, RoomRow, RoomStateRow


@dataclass(frozen=True)
class StoredEvent:
    """An accepted event with its place in the stream (``pdu`` has ``event_id`` added)."""

    event_id: str
    stream_ordering: int
    room_id: str
    pdu: Mapping[str, Any]
    redacted_by: str | None = None

    @property
    def type(self) -> str:
        return self.pdu["type"]

    @property
    def state_key(self) -> str | None:
        return self.pdu.get("state_key")

    @property
    def sender(self) -> str:
        return self.pdu["sender"]


def _stored(row: EventRow) -> StoredEvent:
    return stored_event(row.event_id, row.stream_ordering, row.room_id, row.json,
                        row.redacted_by)


def stored_event(event_id: str, stream_ordering: int, room_id: str, text: str,
                 redacted_by: str | None) -> StoredEvent:
    """The event of a row's columns (``text``: its stored JSON)."""
    pdu = json.loads(text)
    pdu["event_id"] = event_id
    return StoredEvent(event_id, int(stream_ordering), room_id, pdu, redacted_by)


async def max_stream_ordering(session: AsyncSession) -> int:
    return (await session.scalar(select(func.max(EventRow.stream_ordering)))) or 0


async def min_stream_ordering(session: AsyncSession) -> int:
    """The lowest position of all (backfilled history lies below 1)."""
    return (await session.scalar(select(func.min(EventRow.stream_ordering)))) or 0


async def oldest_room_events(session: AsyncSession, room_id: str, limit: int
                             ) -> list[StoredEvent]:
    rows = await session.scalars(select(EventRow).where(EventRow.room_id == room_id)
                                 .order_by(EventRow.stream_ordering.asc()).limit(limit))
    return [_stored(r) for r in rows]


async def redactions_naming(session: AsyncSession, room_id: str, event_id: str
                            ) -> list[StoredEvent]:
    """The room's redaction events whose JSON mentions ``event_id`` (the caller reads
    which event each names): few per room, found through the (room, type) index."""
    rows = await session.scalars(select(EventRow).where(
        EventRow.room_id == room_id, EventRow.type == "m.room.redaction",
        EventRow.json.contains(event_id, autoescape=True))
        .order_by(EventRow.stream_ordering))
    return [_stored(r) for r in rows]


async def redactions_naming_any(session: AsyncSession, room_ids: Iterable[str],
                                event_ids: Iterable[str]) -> list[StoredEvent]:
    """``redactions_naming`` for many events at once (the events of a received
    transaction): the redaction events of ``room_ids`` whose JSON mentions any of
    ``event_ids``, in stream order, in one query."""
    rooms, ids = sorted(set(room_ids)), sorted(set(event_ids))
    if not rooms or not ids:
        return []
    rows = await session.scalars(select(EventRow).where(
        EventRow.room_id.in_(rooms), EventRow.type == "m.room.redaction",
        or_(*(EventRow.json.contains(i, autoescape=True) for i in ids)))
        .order_by(EventRow.stream_ordering))
    return [_stored(r) for r in rows]


async def room(session: AsyncSession, room_id: str) -> RoomRow | None:
    return await session.get(RoomRow, room_id)


async def insert_room(session: AsyncSession, room_id: str, version: str, creator: str,
                      is_public: bool) -> None:
    session.add(RoomRow(room_id=room_id, room_version=version, creator=creator,
                        is_public=is_public))
    await session.flush()


async def latest_event(session: AsyncSession, room_id: str) -> StoredEvent | None:
    row = await session.scalar(select(EventRow).where(EventRow.room_id == room_id)
                               .order_by(EventRow.stream_ordering.desc()).limit(1))
    return _stored(row) if row else None


async def insert_event(session: AsyncSession, pdu: Mapping[str, Any], event_id: str,
                       stream_ordering: int, *, flush: bool = True,
                       state_group: int | None = None,
                       update_state: bool = True) -> StoredEvent:
    """Add the event (and its state and membership rows); ``flush=False`` leaves the
    INSERT to the commit, where the rows of several events go in one statement.
    ``update_state=False``: the current state is the caller's (a received event on
    a fork, where state resolution decides)."""
    body = {k: v for k, v in pdu.items() if k != "event_id"}
    session.add(EventRow(
        event_id=event_id, stream_ordering=stream_ordering, room_id=pdu["room_id"],
        type=pdu["type"], state_key=pdu.get("state_key"), sender=pdu["sender"],
        depth=pdu["depth"], origin_server_ts=pdu["origin_server_ts"],
        json=canonical_json(body).decode("utf-8"), redacted=False, state_group=state_group))
    state_key = pdu.get("state_key")
    if isinstance(state_key, str) and update_state:
        await session.merge(RoomStateRow(room_id=pdu["room_id"], type=pdu["type"],
                                         state_key=state_key, event_id=event_id))
        if pdu["type"] == "m.room.member":
            await session.merge(MembershipRow(
                room_id=pdu["room_id"], user_id=state_key,
                membership=pdu["content"]["membership"], event_id=event_id,
                stream_ordering=stream_ordering, forgotten=False))
    add_relation(session, pdu, event_id, stream_ordering)
    if flush:
        await session.flush()
    return StoredEvent(event_id, stream_ordering, pdu["room_id"], {**body, "event_id": event_id})


async def events_of_txns(session: AsyncSession, keys: Iterable[tuple[int, str, str]],
                         ) -> dict[tuple[int, str, str], str]:
    """(account, device, transaction id) -> the event it made, for those known.
    One driver call (every send batch asks; ``Database.rows_in``)."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    where = " OR ".join(["(account_id = ? AND device_id = ? AND txn_id = ?)"] * len(wanted))
    rows = await Database.rows_in(
        session, f"SELECT account_id, device_id, txn_id, event_id FROM matrix_txn_ids "
                 f"WHERE {where}", [v for key in wanted for v in key])
    return {(int(a), str(d), str(t)): str(e) for a, d, t, e in rows}


async def newest_position(session: AsyncSession) -> int:
    """``max_stream_ordering`` in one driver call, for the start of a write
    transaction (no pending rows to flush first)."""
    rows = await Database.rows_in(session, "SELECT max(stream_ordering) FROM matrix_events")
    return int(rows[0][0] or 0)


async def get_event(session: AsyncSession, event_id: str) -> StoredEvent | None:
    row = await session.get(EventRow, event_id)
    return _stored(row) if row else None


async def get_events(session: AsyncSession, event_ids: Iterable[str]) -> dict[str, StoredEvent]:
    ids = list(set(event_ids))
    if not ids:
        return {}
    rows = await session.scalars(select(EventRow).where(EventRow.event_id.in_(ids)))
    return {r.event_id: _stored(r) for r in rows}


async def current_state(session: AsyncSession, room_id: str,
                        keys: Iterable[tuple[str, str]] | None = None,
                        ) -> dict[tuple[str, str], StoredEvent]:
    query = (select(EventRow).join(RoomStateRow, RoomStateRow.event_id == EventRow.event_id)
             .where(RoomStateRow.room_id == room_id))
    if keys is not None:
        wanted = list(keys)
        if not wanted:
            return {}
        query = query.where(tuple_(RoomStateRow.type, RoomStateRow.state_key).in_(wanted)) \
            if len(wanted) > 1 else query.where(RoomStateRow.type == wanted[0][0],
                                                RoomStateRow.state_key == wanted[0][1])
    rows = await session.scalars(query)
    return {(r.type, r.state_key or ""): _stored(r) for r in rows}


async def state_at(session: AsyncSession, room_id: str,
                   stream_ordering: int) -> dict[tuple[str, str], StoredEvent]:
    """The room state after the room's events up to ``stream_ordering``: the current
    state once that covers the room's newest event (where a room shared with other
    servers forked, state resolution made it), else the last event per key (the
    linear stream)."""
    newest = await session.scalar(select(func.max(EventRow.stream_ordering))
                                  .where(EventRow.room_id == room_id))
    if newest is not None and stream_ordering >= newest:
        return await current_state(session, room_id)
    latest = (select(EventRow.type, EventRow.state_key,
                     func.max(EventRow.stream_ordering).label("pos"))
              .where(EventRow.room_id == room_id, EventRow.state_key.is_not(None),
                     EventRow.stream_ordering <= stream_ordering)
              .group_by(EventRow.type, EventRow.state_key).subquery())
    rows = await session.scalars(select(EventRow).join(
        latest, and_(EventRow.room_id == room_id,
                     EventRow.stream_ordering == latest.c.pos)))
    return {(r.type, r.state_key or ""): _stored(r) for r in rows}


async def room_events(session: AsyncSession, room_id: str, *, after: int, upto: int,
                      limit: int, newest_first: bool) -> list[StoredEvent]:
    """Events of a room with ``after < stream_ordering <= upto``."""
    order = EventRow.stream_ordering.desc() if newest_first else EventRow.stream_ordering.asc()
    rows = await session.scalars(
        select(EventRow).where(EventRow.room_id == room_id,
                               EventRow.stream_ordering > after,
                               EventRow.stream_ordering <= upto)
        .order_by(order).limit(limit))
    return [_stored(r) for r in rows]


async def memberships_of(session: AsyncSession, user_id: str) -> list[MembershipRow]:
    rows = await session.scalars(select(MembershipRow).where(MembershipRow.user_id == user_id))
    return list(rows)


async def membership(session: AsyncSession, room_id: str, user_id: str) -> MembershipRow | None:
    return await session.get(MembershipRow, (room_id, user_id))


async def room_members(session: AsyncSession, room_id: str,
                       membership_value: str | None = None) -> list[MembershipRow]:
    query = select(MembershipRow).where(MembershipRow.room_id == room_id)
    if membership_value is not None:
        query = query.where(MembershipRow.membership == membership_value)
    return list(await session.scalars(query.order_by(MembershipRow.user_id)))


async def set_forgotten(session: AsyncSession, room_id: str, user_id: str) -> None:
    await session.execute(update(MembershipRow).where(
        MembershipRow.room_id == room_id, MembershipRow.user_id == user_id)
        .values(forgotten=True))


async def replace_with_redacted(session: AsyncSession, event_id: str,
                                redacted_pdu: Mapping[str, Any], redacted_by: str) -> None:
    body = {k: v for k, v in redacted_pdu.items() if k != "event_id"}
    await forget_relation(session, event_id)
    await session.execute(update(EventRow).where(EventRow.event_id == event_id).values(
        json=canonical_json(body).decode("utf-8"), redacted=True, redacted_by=redacted_by))


async def room_ids_with_events_between(session: AsyncSession, room_ids: Iterable[str],
                                       after: int, upto: int) -> set[str]:
    ids = list(room_ids)
    if not ids:
        return set()
    rows = await session.scalars(
        select(EventRow.room_id).where(EventRow.room_id.in_(ids),
                                       EventRow.stream_ordering > after,
                                       EventRow.stream_ordering <= upto).distinct())
    return set(rows)


async def public_room_ids(session: AsyncSession) -> list[str]:
    rows = await session.scalars(select(RoomRow.room_id).where(RoomRow.is_public.is_(True))
                                 .order_by(RoomRow.room_id))
    return list(rows)
