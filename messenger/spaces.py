"""Space hierarchies (spec: Client-Server API v1.12 "Spaces", GET
/_matrix/client/v1/rooms/{roomId}/hierarchy).

A space is a room whose ``m.space.child`` state events (with a non-empty
``via``) name its children.  The walk is breadth-first from the requested room,
to ``max_depth`` levels, each room once.  A room appears when the user may see
it: they are joined, or its join rule lets them in (public, knock); other
rooms are left out together with their children.  Only rooms this server
knows are listed (no federation here).  Children are ordered as the spec says:
by their ``order`` string, then by the child event's timestamp, then room id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import Database
from messenger.events.client_format import stripped_state
from messenger.rooms.errors import Forbidden
from messenger.rooms.lookups import room_version_of
from messenger.storage import events as store
from messenger.storage.events import StoredEvent

MAX_DEPTH = 10
OPEN_JOIN_RULES = ("public", "knock", "knock_restricted")
SUMMARY_STATE = [("m.room.name", ""), ("m.room.topic", ""), ("m.room.canonical_alias", ""),
                 ("m.room.avatar", ""), ("m.room.join_rules", ""), ("m.room.create", ""),
                 ("m.room.history_visibility", ""), ("m.room.guest_access", "")]


@dataclass(frozen=True)
class HierarchyPage:
    rooms: list[dict[str, Any]]
    next_offset: int | None


def _valid_child(event: StoredEvent) -> bool:
    via = (event.pdu.get("content") or {}).get("via")
    return isinstance(via, list) and bool(via) and bool(event.state_key)


def _child_order(event: StoredEvent) -> tuple[int, str, int, str]:
    order = (event.pdu.get("content") or {}).get("order")
    if not (isinstance(order, str) and len(order) <= 50 and all(
            0x20 <= ord(c) <= 0x7E for c in order)):
        order = None  # an invalid order counts as none
    return (0 if order is not None else 1, order or "",
            int(event.pdu.get("origin_server_ts", 0)), event.state_key or "")


class Spaces:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def hierarchy(self, user_id: str, room_id: str, *, max_depth: int,
                        suggested_only: bool, offset: int, limit: int) -> HierarchyPage:
        """One page of the walk: ``offset`` rooms skipped, ``limit`` returned."""
        async with self._db.read() as session:
            await room_version_of(session, room_id)  # unknown room: 404
            root = await self._summary(session, user_id, room_id, suggested_only)
            if root is None:
                raise Forbidden("you cannot see this room")
            out: list[dict[str, Any]] = []
            seen = {room_id}
            level = [(root, 0)]
            while level and len(out) < offset + limit + 1:
                next_level = []
                for summary, depth in level:
                    out.append(summary)
                    if depth >= max_depth:
                        continue  # its children are named, not walked
                    for child in summary["children_state"]:
                        child_id = child["state_key"]
                        if child_id in seen:
                            continue
                        seen.add(child_id)
                        found = await self._summary(session, user_id, child_id,
                                                    suggested_only)
                        if found is not None:
                            next_level.append((found, depth + 1))
                level = next_level
        page = out[offset:offset + limit]
        return HierarchyPage(page, offset + limit if len(out) > offset + limit else None)

    async def _summary(self, session: AsyncSession, user_id: str, room_id: str,
                       suggested_only: bool) -> dict[str, Any] | None:
        """The room's summary with its children, or None if unknown or not visible."""
        if await store.room(session, room_id) is None:
            return None
        state = await store.current_state(session, room_id, SUMMARY_STATE)

        def content(event_type: str) -> dict[str, Any]:
            event = state.get((event_type, ""))
            return dict(event.pdu.get("content") or {}) if event else {}

        join_rule = content("m.room.join_rules").get("join_rule", "invite")
        member = await store.membership(session, room_id, user_id)
        if not ((member is not None and member.membership == "join")
                or join_rule in OPEN_JOIN_RULES):
            return None
        joined = await store.room_members(session, room_id, "join")
        children = [e for e in (await store.current_state(session, room_id)).values()
                    if e.type == "m.space.child" and _valid_child(e) and (
                        not suggested_only
                        or (e.pdu.get("content") or {}).get("suggested") is True)]
        children.sort(key=_child_order)
        summary: dict[str, Any] = {
            "room_id": room_id, "num_joined_members": len(joined),
            "world_readable": content("m.room.history_visibility").get(
                "history_visibility") == "world_readable",
            "guest_can_join": content("m.room.guest_access").get("guest_access") == "can_join",
            "join_rule": join_rule,
            "children_state": [
                {**stripped_state(e.pdu), "origin_server_ts": e.pdu.get("origin_server_ts", 0)}
                for e in children],
        }
        room_type = content("m.room.create").get("type")
        if isinstance(room_type, str):
            summary["room_type"] = room_type
        for key, (event_type, field) in {
                "name": ("m.room.name", "name"), "topic": ("m.room.topic", "topic"),
                "canonical_alias": ("m.room.canonical_alias", "alias"),
                "avatar_url": ("m.room.avatar", "url")}.items():
            value = content(event_type).get(field)
            if isinstance(value, str):
                summary[key] = value
        return summary
