"""Reading rooms (spec: Client-Server API 9.5 "Getting events for a room",
10.9 /context, 10.5 the public room directory): what a user may see of a room's
events, state and members, page by page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import Database
from messenger.rooms.errors import Forbidden, RoomNotFound
from messenger.rooms.lookups import existing_room, room_version_of
from messenger.rooms.visibility import FIRST_POSITION, visibility_of
from messenger.storage import events as store
from messenger.storage.events import StoredEvent


@dataclass(frozen=True)
class Page:
    """A page of /messages: events in the order asked, and the token position to go on."""

    events: list[StoredEvent]
    start_position: int
    next_position: int | None


async def readable_rooms(session: AsyncSession, user_id: str) -> dict[str, int]:
    """room -> the last position the user may read, for every room they may read
    (the rule of ``RoomReader.visible_upto`` for all their rooms at once)."""
    newest = await store.max_stream_ordering(session)
    out = {}
    for row in await store.memberships_of(session, user_id):
        if row.membership == "join":
            out[row.room_id] = newest
        elif row.membership in ("leave", "ban") and not row.forgotten:
            out[row.room_id] = row.stream_ordering
    return out


# Fetches up to n events of a room from before the oldest held here from other
# servers; how many it stored (messenger.rooms.backfill).
Backfill = Callable[[str, int], Awaitable[int]]


class RoomReader:
    def __init__(self, db: Database) -> None:
        self._db = db
        # Set when rooms federate: /messages pages back into history from before
        # this server joined.
        self.backfill: Backfill | None = None

    async def visible_upto(self, session: AsyncSession, user_id: str, room_id: str) -> int:
        """The last stream position of ``room_id`` that ``user_id`` may read.

        Members read everything (history visibility "shared"); former members
        read up to the moment they left.  Others are refused.
        """
        await room_version_of(session, room_id)
        row = await store.membership(session, room_id, user_id)
        if row is not None and row.membership == "join":
            return await store.max_stream_ordering(session)
        if row is not None and row.membership in ("leave", "ban") and not row.forgotten:
            return row.stream_ordering
        raise Forbidden(f"{user_id} is not in the room {room_id}")

    async def get_event(self, user_id: str, room_id: str, event_id: str) -> StoredEvent:
        async with self._db.read() as session:
            upto = await self.visible_upto(session, user_id, room_id)
            event = await store.get_event(session, event_id)
            if event is None or event.room_id != room_id or event.stream_ordering > upto \
                    or not (await visibility_of(session, room_id, user_id)).visible(
                        event.stream_ordering):
                raise RoomNotFound(f"unknown event {event_id}")
        return event

    async def room_state(self, user_id: str, room_id: str) -> list[StoredEvent]:
        async with self._db.read() as session:
            upto = await self.visible_upto(session, user_id, room_id)
            events = await store.state_at(session, room_id, upto)
        return sorted(events.values(), key=lambda e: e.stream_ordering)

    async def state_event(self, user_id: str, room_id: str, event_type: str,
                          state_key: str) -> StoredEvent:
        async with self._db.read() as session:
            upto = await self.visible_upto(session, user_id, room_id)
            events = await store.state_at(session, room_id, upto)
        event = events.get((event_type, state_key))
        if event is None:
            raise RoomNotFound(f"no {event_type} state with key {state_key!r}")
        return event

    async def members(self, user_id: str, room_id: str,
                      membership: str | None = None) -> list[StoredEvent]:
        events = await self.room_state(user_id, room_id)
        return [e for e in events if e.type == "m.room.member" and (
            membership is None or (e.pdu.get("content") or {}).get("membership") == membership)]

    async def joined_rooms(self, user_id: str) -> list[str]:
        async with self._db.read() as session:
            rows = await store.memberships_of(session, user_id)
        return sorted(r.room_id for r in rows if r.membership == "join")

    async def messages(self, user_id: str, room_id: str, *, from_position: int | None,
                       to_position: int | None, backwards: bool, limit: int) -> Page:
        """/messages: positions are stream orderings (a token p lies after event p);
        only the events the room's history visibility shows the user (spec 11.2):
        pages stop where nothing before is visible, events hidden within a page
        are left out (the token still moves past them).  Paging back past the
        oldest event held here, into history the user may see, first asks the
        other servers in the room for it (``backfill``)."""
        page, wants_more = await self._page(user_id, room_id, from_position, to_position,
                                            backwards, limit)
        if wants_more and self.backfill is not None \
                and await self.backfill(room_id, limit - len(page.events)):
            page, _ = await self._page(user_id, room_id, from_position, to_position,
                                       backwards, limit)
        return page

    async def _page(self, user_id: str, room_id: str, from_position: int | None,
                    to_position: int | None, backwards: bool, limit: int
                    ) -> tuple[Page, bool]:
        """A page, and whether it ends at the oldest event held here with history
        before it that the user could see (backfill could add to it)."""
        wants_more = False
        async with self._db.read() as session:
            upto = await self.visible_upto(session, user_id, room_id)
            visibility = await visibility_of(session, room_id, user_id)
            hidden_below = visibility.floor()
            if backwards:
                start = upto if from_position is None else min(from_position, upto)
                floor = max(to_position if to_position is not None else FIRST_POSITION,
                            hidden_below)
                events = await store.room_events(session, room_id, after=floor, upto=start,
                                                 limit=limit, newest_first=True)
                more = len(events) == limit
                next_position = events[-1].stream_ordering - 1 if more and events else None
                if not more and to_position is None and self.backfill is not None:
                    # History from before the user's join is theirs to see (what is
                    # missing, if anything, the backfill finds out).
                    wants_more = visibility.setting_before(visibility.last_join + 1) in (
                        "shared", "world_readable")
            else:
                start = max(FIRST_POSITION if from_position is None else from_position,
                            hidden_below)
                ceiling = upto if to_position is None else min(to_position, upto)
                events = await store.room_events(session, room_id, after=start, upto=ceiling,
                                                 limit=limit, newest_first=False)
                more = len(events) == limit
                next_position = events[-1].stream_ordering if more and events else None
        shown = [e for e in events if visibility.visible(e.stream_ordering)]
        return Page(shown, start, next_position), wants_more

    async def context(self, user_id: str, room_id: str, event_id: str, limit: int,
                      ) -> tuple[list[StoredEvent], StoredEvent, list[StoredEvent],
                                 list[StoredEvent]]:
        """/context (spec 10.9): up to ``limit`` events around one, split before and
        after, and the room state at the event; only what the user may read."""
        async with self._db.read() as session:
            upto = await self.visible_upto(session, user_id, room_id)
            visibility = await visibility_of(session, room_id, user_id)
            event = await store.get_event(session, event_id)
            if event is None or event.room_id != room_id or event.stream_ordering > upto \
                    or not visibility.visible(event.stream_ordering):
                raise RoomNotFound(f"unknown event {event_id}")
            before_n = limit // 2
            before = await store.room_events(session, room_id, after=visibility.floor(),
                                             upto=event.stream_ordering - 1,
                                             limit=before_n, newest_first=True)
            after = await store.room_events(session, room_id, after=event.stream_ordering,
                                            upto=upto, limit=limit - before_n,
                                            newest_first=False)
            state = await store.state_at(session, room_id, event.stream_ordering)
        before = [e for e in before if visibility.visible(e.stream_ordering)]
        after = [e for e in after if visibility.visible(e.stream_ordering)]
        return before, event, after, sorted(state.values(), key=lambda e: e.stream_ordering)

    async def is_public(self, room_id: str) -> bool:
        async with self._db.read() as session:
            row = await existing_room(session, room_id)
        return row.is_public

    async def public_rooms(self) -> list[dict[str, Any]]:
        """Rooms published to the room directory (createRoom visibility public)."""
        async with self._db.read() as session:
            room_ids = await store.public_room_ids(session)
            out = []
            for room_id in room_ids:
                state = await store.current_state(session, room_id, [
                    ("m.room.name", ""), ("m.room.topic", ""), ("m.room.canonical_alias", ""),
                    ("m.room.join_rules", "")])
                joined = await store.room_members(session, room_id, "join")

                def field(event_type: str, key: str, st: Any = state) -> Any:
                    event = st.get((event_type, ""))
                    return (event.pdu.get("content") or {}).get(key) if event else None

                entry: dict[str, Any] = {
                    "room_id": room_id, "num_joined_members": len(joined),
                    "world_readable": False, "guest_can_join": False,
                    "join_rule": field("m.room.join_rules", "join_rule") or "invite"}
                for key, (event_type, content_key) in {
                        "name": ("m.room.name", "name"), "topic": ("m.room.topic", "topic"),
                        "canonical_alias": ("m.room.canonical_alias", "alias")}.items():
                    value = field(event_type, content_key)
                    if isinstance(value, str):
                        entry[key] = value
                out.append(entry)
        out.sort(key=lambda r: (-r["num_joined_members"], r["room_id"]))
        return out
