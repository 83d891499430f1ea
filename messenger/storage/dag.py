"""Queries on the room DAG (tables in ``messenger.storage.dag_tables``): forward
extremities, state groups and outlier events (Server-Server API "Room DAG",
"Rejection", "Soft failure")."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import Database
from messenger.events.canonical import canonical_json
from messenger.storage.dag_tables import ForwardExtremityRow, OutlierEventRow, StateGroupRow
from messenger.storage.tables import EventRow

StateKey = tuple[str, str]
StateIds = dict[StateKey, str]
FULL_EVERY = 50  # a full state map after this many deltas: loading reads at most 51 rows


async def forward_extremities(session: AsyncSession, room_id: str) -> dict[str, int]:
    """The room's forward extremities: event id -> depth."""
    rows = await session.execute(
        select(EventRow.event_id, EventRow.depth)
        .join(ForwardExtremityRow, ForwardExtremityRow.event_id == EventRow.event_id)
        .where(ForwardExtremityRow.room_id == room_id))
    return {event_id: depth for event_id, depth in rows}


async def move_extremities(session: AsyncSession, room_id: str, removed: Iterable[str],
                           added: Iterable[str]) -> None:
    """``removed`` are no longer forward extremities of the room, ``added`` are.

    Plain statements on the session's connection, run at once: no ORM flush of the
    writer's pending rows here (every send comes through), and a later call in the
    same transaction sees what an earlier one did.  The usual case, one event
    after the one before it, is a single UPDATE."""
    gone = list(set(removed) - set(added))
    new = sorted(set(added) - set(removed))
    connection = await session.connection()
    table = ForwardExtremityRow.__table__
    if len(gone) == 1 and len(new) == 1:
        moved = await connection.execute(
            update(ForwardExtremityRow)
            .where(table.c.room_id == room_id, table.c.event_id == gone[0])
            .values(event_id=new[0]))
        if moved.rowcount == 1:
            return
        gone = []
    if gone:
        await connection.execute(delete(ForwardExtremityRow).where(
            table.c.room_id == room_id, table.c.event_id.in_(gone)))
    if new:
        await connection.execute(insert(ForwardExtremityRow),
                                 [{"room_id": room_id, "event_id": e} for e in new])


async def move_extremities_of(session: AsyncSession,
                               moves: Mapping[str, tuple[Iterable[str], Iterable[str]]]) -> None:
    """``move_extremities`` for several rooms (room id -> removed, added), as a send
    batch ends: the rooms where one event followed the one extremity (the usual
    case) in one UPDATE, one driver call (``Database.rows_in``) for them all; the
    others room by room."""
    simple: dict[str, tuple[str, str]] = {}
    rest: dict[str, tuple[Iterable[str], Iterable[str]]] = {}
    for room_id, (removed, added) in moves.items():
        gone = set(removed) - set(added)
        new = set(added) - set(removed)
        if len(gone) == 1 and len(new) == 1:
            simple[room_id] = (gone.pop(), new.pop())
        elif gone or new:
            rest[room_id] = (gone, new)
    if len(simple) == 1:
        rest.update({r: ([old], [new]) for r, (old, new) in simple.items()})
    elif simple:
        table = ForwardExtremityRow.__tablename__
        rows = await Database.rows_in(
            session, f"UPDATE {table} SET event_id = CASE room_id "
                     f"{' '.join(['WHEN ? THEN ?'] * len(simple))} END WHERE "
                     f"{' OR '.join(['(room_id = ? AND event_id = ?)'] * len(simple))} "
                     f"RETURNING room_id",
            [v for room_id, (_old, new) in simple.items() for v in (room_id, new)]
            + [v for room_id, (old, _new) in simple.items() for v in (room_id, old)])
        moved = {r for (r,) in rows}
        # A room whose old extremity was not there: the general path adds the new one.
        rest.update({r: ([old], [new]) for r, (old, new) in simple.items() if r not in moved})
    for room_id, (removed, added) in rest.items():
        await move_extremities(session, room_id, removed, added)


def _encode(state: Mapping[StateKey, str]) -> str:
    return json.dumps(sorted([t, k, e] for (t, k), e in state.items()))


def _decode(text: str) -> StateIds:
    return {(t, k): e for t, k, e in json.loads(text)}


async def new_state_group(session: AsyncSession, room_id: str, state: Mapping[StateKey, str],
                          *, prev_group: int | None = None,
                          delta: Mapping[StateKey, str] | None = None) -> int:
    """A group for ``state``: stored as ``delta`` on ``prev_group`` when given (and the
    chain is not too long), else in full."""
    steps = 0
    if prev_group is not None and delta is not None:
        prev = await session.get(StateGroupRow, prev_group)
        if prev is not None and prev.steps + 1 < FULL_EVERY:
            steps = prev.steps + 1
        else:
            prev_group, delta = None, None
    row = StateGroupRow(room_id=room_id, prev_group=prev_group if delta is not None else None,
                        steps=steps, delta=_encode(delta if delta is not None else state))
    session.add(row)
    await session.flush()
    return row.id


async def state_of_group(session: AsyncSession, group: int) -> StateIds:
    chain: list[StateGroupRow] = []
    current: int | None = group
    while current is not None and len(chain) <= FULL_EVERY:
        row = await session.get(StateGroupRow, current)
        if row is None:
            raise LookupError(f"state group {current} is missing")
        chain.append(row)
        current = row.prev_group
    state: StateIds = {}
    for row in reversed(chain):
        state.update(_decode(row.delta))
    return state


async def state_groups_of(session: AsyncSession, event_ids: Iterable[str]
                          ) -> dict[str, tuple[int | None, int]]:
    """Event id -> (its state group, its stream ordering), for timeline events."""
    ids = list(set(event_ids))
    if not ids:
        return {}
    rows = await session.execute(select(EventRow.event_id, EventRow.state_group,
                                        EventRow.stream_ordering)
                                 .where(EventRow.event_id.in_(ids)))
    return {e: (g, s) for e, g, s in rows}


async def set_state_group(session: AsyncSession, event_id: str, group: int) -> None:
    row = await session.get(EventRow, event_id)
    if row is not None:
        row.state_group = group


async def insert_outlier(session: AsyncSession, pdu: Mapping[str, Any], event_id: str,
                         status: str, reason: str = "") -> None:
    body = {k: v for k, v in pdu.items() if k != "event_id"}
    if await session.get(OutlierEventRow, event_id) is not None:
        return
    session.add(OutlierEventRow(event_id=event_id, room_id=str(pdu.get("room_id", "")),
                                status=status, reason=reason[:500],
                                json=canonical_json(body).decode("utf-8")))


async def outliers(session: AsyncSession, event_ids: Iterable[str]
                   ) -> dict[str, tuple[str, dict[str, Any]]]:
    """Event id -> (status, PDU with ``event_id``) for the outliers among ``event_ids``."""
    ids = list(set(event_ids))
    if not ids:
        return {}
    out = {}
    for row in await session.scalars(select(OutlierEventRow)
                                     .where(OutlierEventRow.event_id.in_(ids))):
        pdu = json.loads(row.json)
        pdu["event_id"] = row.event_id
        out[row.event_id] = (row.status, pdu)
    return out


async def drop_outlier(session: AsyncSession, event_id: str) -> None:
    await session.execute(delete(OutlierEventRow).where(OutlierEventRow.event_id == event_id))


async def timeline_events(session: AsyncSession, event_ids: Iterable[str]) -> set[str]:
    """Which of ``event_ids`` are in the timeline (not outliers)."""
    ids = list(set(event_ids))
    if not ids:
        return set()
    return set(await session.scalars(select(EventRow.event_id)
                                     .where(EventRow.event_id.in_(ids))))


async def known_events(session: AsyncSession, event_ids: Iterable[str]) -> set[str]:
    """Which of ``event_ids`` this server has, in the timeline or as outliers."""
    ids = list(set(event_ids))
    if not ids:
        return set()
    found = set(await session.scalars(select(EventRow.event_id)
                                      .where(EventRow.event_id.in_(ids))))
    found |= set(await session.scalars(select(OutlierEventRow.event_id)
                                       .where(OutlierEventRow.event_id.in_(ids))))
    return found
