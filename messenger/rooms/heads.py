"""What the room service needs to build the next event of a room, kept in memory
(spec: Server-Server API 4 "PDUs": ``prev_events``, ``depth``, ``auth_events``
come from the room's latest event and current state).

A send would otherwise read the room's version, its latest event and the auth
state from the database in its write transaction, every time.  The heads are
valid while the database's newest stream position is the one this process
committed last: the writer reads that maximum anyway (it hands out the next
position), and when it differs someone else wrote, so every head is dropped
and read again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from messenger.events.room_versions import RoomVersion, room_version
from messenger.rooms.errors import RoomNotFound
from messenger.storage import events as store
from messenger.storage.events import StoredEvent

MAX_ROOMS = 5_000


@dataclass(eq=False)
class RoomHead:
    version: RoomVersion
    latest: StoredEvent | None
    state: dict[tuple[str, str], Mapping[str, Any]]  # the full current state, as PDUs


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
        latest = await store.latest_event(session, room_id)
        state = {k: e.pdu for k, e in (await store.current_state(session, room_id)).items()}
        head = self._heads[room_id] = RoomHead(room_version(row.room_version), latest, state)
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
            head.latest = event
            if event.state_key is not None:
                head.state[(event.type, event.state_key)] = event.pdu

    def forget(self, room_id: str) -> None:
        """A change the heads do not follow (a redaction may hit a state event)."""
        self._heads.pop(room_id, None)
