"""The room state at points of the DAG, read from the database and resolved
(Server-Server API "Room State Resolution"; state resolution v2 in
``messenger.rooms.state_resolution``).

The state after an event is its state group; events from before the room
reached another server have none, and there the linear stream says it
(``state_at``).  The current state of a room is the resolution of the states
after its forward extremities; ``set_current_state`` writes it to the current
state and membership tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from messenger.events.room_versions import RoomVersion, room_version
from messenger.rooms.state import auth_event_ids
from messenger.rooms.state_resolution import MissingEvent, resolve_state
from messenger.storage import dag
from messenger.storage import events as store
from messenger.storage.tables import MembershipRow, RoomStateRow

StateIds = dict[tuple[str, str], str]
MAX_AUTH_CHAIN = 10_000
MAX_SOFT_FAILED = 100  # soft-failed events one state_after may walk back through


async def events_by_id(session: AsyncSession, event_ids: Iterable[str], *,
                       with_rejected: bool = False) -> dict[str, Mapping[str, Any]]:
    """PDUs (with ``event_id``) from the timeline and the outliers."""
    ids = set(event_ids)
    found: dict[str, Mapping[str, Any]] = {
        i: e.pdu for i, e in (await store.get_events(session, ids)).items()}
    rest = ids - set(found)
    for event_id, (status, pdu) in (await dag.outliers(session, rest)).items():
        if with_rejected or status != "rejected":
            found[event_id] = pdu
    return found


async def with_auth_chains(session: AsyncSession, event_ids: Iterable[str]
                           ) -> dict[str, Mapping[str, Any]]:
    """The events and everything reachable through their ``auth_events``."""
    events: dict[str, Mapping[str, Any]] = {}
    wanted = set(event_ids)
    while wanted and len(events) < MAX_AUTH_CHAIN:
        found = await events_by_id(session, wanted)
        events.update(found)
        wanted = {a for e in found.values() for a in auth_event_ids(e)} - set(events)
        if not found:
            break
    return events


async def auth_chain_ids(session: AsyncSession, event_ids: Iterable[str]) -> set[str]:
    events = await with_auth_chains(session, event_ids)
    return {a for e in events.values() for a in auth_event_ids(e)} & set(events)


async def state_after(session: AsyncSession, room_id: str, event_id: str,
                      _budget: list[int] | None = None) -> StateIds | None:
    """The state after a timeline or soft-failed event; None for any other event."""
    known = await dag.state_groups_of(session, [event_id])
    if event_id not in known:
        return await _state_after_soft_failed(session, room_id, event_id,
                                              [MAX_SOFT_FAILED] if _budget is None else _budget)
    group, position = known[event_id]
    if group is not None:
        return await dag.state_of_group(session, group)
    return {k: e.event_id for k, e in (await store.state_at(session, room_id, position)).items()}


async def _state_after_soft_failed(session: AsyncSession, room_id: str, event_id: str,
                                   budget: list[int]) -> StateIds | None:
    """A soft-failed event is kept out of the timeline and the current state, but a
    later event may name it as a prev event: its state then counts as any other's
    (Server-Server API "Soft failure"), or this server would compute another state
    before that later event than the servers that accepted it.  Soft-failed events
    get no state group: their state is the resolution over their own prev events
    plus the event, computed here (``budget``: soft-failed events visited at most)."""
    found = (await dag.outliers(session, [event_id])).get(event_id)
    if found is None or found[0] != "soft_failed" or budget[0] <= 0:
        return None
    budget[0] -= 1
    pdu = found[1]
    states = [s for p in pdu.get("prev_events") or []
              if (s := await state_after(session, room_id, p, budget)) is not None]
    room = await store.room(session, room_id)
    if not states or room is None:
        return None
    after = await resolve(session, room_version(room.room_version), states)
    state_key = pdu.get("state_key")
    if isinstance(state_key, str):
        after[(pdu["type"], state_key)] = event_id
    return after


async def resolve(session: AsyncSession, version: RoomVersion,
                  state_sets: Sequence[StateIds]) -> StateIds:
    """State resolution v2 over ``state_sets`` with the events read from the database;
    a state map naming an event we do not have loses that entry."""
    if not state_sets:
        return {}
    if len(state_sets) == 1 or all(s == state_sets[0] for s in state_sets[1:]):
        return dict(state_sets[0])
    events = await with_auth_chains(session, {i for s in state_sets for i in s.values()})
    usable = [{k: v for k, v in s.items() if v in events} for s in state_sets]
    try:
        return resolve_state(usable, events, version)
    except MissingEvent:
        # An auth chain reaches an event we never got: prune those chains' events.
        complete = {i for i, e in events.items()
                    if all(a in events for a in auth_event_ids(e))}
        return resolve_state([{k: v for k, v in s.items() if v in complete} for s in usable],
                             {i: e for i, e in events.items() if i in complete}, version)


async def current_state_ids(session: AsyncSession, room_id: str) -> StateIds:
    rows = await session.execute(select(RoomStateRow.type, RoomStateRow.state_key,
                                         RoomStateRow.event_id)
                                 .where(RoomStateRow.room_id == room_id))
    return {(t, k): e for t, k, e in rows}


async def set_current_state(session: AsyncSession, room_id: str, new: Mapping[tuple[str, str], str],
                            position: int) -> None:
    """Make ``new`` the room's current state; changed memberships move to ``position``
    (so /sync sees them as news)."""
    old = await current_state_ids(session, room_id)
    changed = {k: v for k, v in new.items() if old.get(k) != v}
    gone = [k for k in old if k not in new]
    for event_type, state_key in gone:
        await session.execute(delete(RoomStateRow).where(
            RoomStateRow.room_id == room_id, RoomStateRow.type == event_type,
            RoomStateRow.state_key == state_key))
    if not changed:
        return
    # Only timeline events: the current state table points into it.
    events = {i: e.pdu for i, e in (await store.get_events(session, changed.values())).items()}
    for (event_type, state_key), event_id in changed.items():
        event = events.get(event_id)
        if event is None:
            continue
        await session.merge(RoomStateRow(room_id=room_id, type=event_type, state_key=state_key,
                                         event_id=event_id))
        if event_type == "m.room.member":
            membership = (event.get("content") or {}).get("membership")
            await session.merge(MembershipRow(
                room_id=room_id, user_id=state_key,
                membership=membership if isinstance(membership, str) else "leave",
                event_id=event_id, stream_ordering=position, forgotten=False))
