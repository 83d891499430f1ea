"""What the room service needs to build the next event of a room, kept in memory
(spec: Server-Server API "PDUs": ``prev_events`` are the room's forward
extremities, ``depth`` one more than theirs, ``auth_events`` come from the
current state).

A send would otherwise read the room's version, its extremities and the auth
state from the database in its write transaction, every time.  The heads are
valid while the database's newest stream position is the one this process
committed last: the writer reads that maximum anyway (it hands out the next
position), and when it differs someone else wrote, so every head is dropped
and read again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from messenger.events.identifiers import server_of
from messenger.events.room_versions import RoomVersion, room_version
from messenger.rooms.errors import RoomNotFound
from messenger.storage import dag
from messenger.storage import events as store
from messenger.storage.events import StoredEvent

MAX_ROOMS = 5_000
MAX_PREV_EVENTS = 10  # of the extremities, the deepest (spec: at most 20 for v3+ rooms)


@dataclass(eq=False)
class RoomHead:
    version: RoomVersion
    extremities: dict[str, int]  # forward extremities: event id -> depth
    state: dict[tuple[str, str], Mapping[str, Any]]  # the full current state, as PDUs
    state_group: int | None = None  # the group of ``state``, when one was written
    _servers: frozenset[str] | None = field(default=None, repr=False)

    @property
    def servers(self) -> frozenset[str]:
        """The servers with joined members (Server-Server API: "resident servers")."""
        if self._servers is None:
            self._servers = frozenset(
                server_of(key) for (kind, key), event in self.state.items()
                if kind == "m.room.member"
                and (event.get("content") or {}).get("membership") == "join")
        return self._servers

    def prev_events(self) -> dict[str, int]:
        deepest = sorted(self.extremities.items(), key=lambda item: (-item[1], item[0]))
        return dict(deepest[:MAX_PREV_EVENTS])

    def advance(self, event: StoredEvent) -> None:
        """``event`` joined the timeline after this state (no fork resolution)."""
        for prev in event.pdu.get("prev_events") or []:
            self.extremities.pop(prev, None)
        self.extremities[event.event_id] = int(event.pdu.get("depth", 0))
        if event.state_key is not None:
            self.state[(event.type, event.state_key)] = event.pdu
            if event.type == "m.room.member":
                self._servers = None


def next_depth(prev: Mapping[str, int]) -> int:
    return max(prev.values(), default=0) + 1


class RoomHeads:
    """One per room service; touched only under its write lock."""

    def __init__(self) -> None:
        self._heads: OrderedDict[str, RoomHead] = OrderedDict()
        self._position: int | None = None  # the stream position the heads are valid at

    async def get(self, session: AsyncSession, room_id: str, newest: int) -> RoomHead:
        """The head of ``room_id``; ``newest``: the database's max stream ordering,
        read in this same transaction."""
        if newest != self._position:
            self._heads.clear()
            self._position = newest
        head = self._heads.get(room_id)
        if head is not None:
            self._heads.move_to_end(room_id)
            return head
        row = await store.room(session, room_id)
        if row is None:
            raise RoomNotFound(f"unknown room {room_id}")
        extremities = await dag.forward_extremities(session, room_id)
        if not extremities:
            latest = await store.latest_event(session, room_id)
            if latest is not None:
                extremities = {latest.event_id: int(latest.pdu["depth"])}
        state = {k: e.pdu for k, e in (await store.current_state(session, room_id)).items()}
        group = None
        if len(extremities) == 1:
            group = (await dag.state_groups_of(session, extremities)).get(
                next(iter(extremities)), (None, 0))[0]
        head = self._heads[room_id] = RoomHead(room_version(row.room_version), extremities,
                                               state, group)
        if len(self._heads) > MAX_ROOMS:
            self._heads.popitem(last=False)
        return head

    def committed(self, event: StoredEvent) -> None:
        """``event`` was committed (in stream order): its room's head moves on."""
        if self._position != event.stream_ordering - 1:
            self._heads.clear()  # positions we did not see: nothing cached is sure
        self._position = event.stream_ordering
        head = self._heads.get(event.room_id)
        if head is not None:
            head.advance(event)

    def forget(self, room_id: str) -> None:
        """A change the heads do not follow (a redaction may hit a state event, a
        received event may fork the graph)."""
        self._heads.pop(room_id, None)
