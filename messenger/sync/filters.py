"""The part of sync filters we apply (spec: Client-Server API 8.1.2 "Filtering").

Supported: ``room.timeline.limit``, ``room.rooms``/``room.not_rooms``,
``room.include_leave``, ``room.timeline.types``/``not_types``.  Everything else
is accepted and ignored, which the spec allows for a server's own filters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from messenger.rooms.errors import InvalidRequest


@dataclass(frozen=True)
class SyncFilter:
    timeline_limit: int | None = None
    include_leave: bool = False
    rooms: frozenset[str] | None = None
    not_rooms: frozenset[str] = frozenset()
    types: tuple[str, ...] | None = None
    not_types: tuple[str, ...] = ()
    # Spec 11.6.2.3 (threaded notifications): per-thread counts in joined rooms.
    unread_thread_notifications: bool = False

    def wants_room(self, room_id: str) -> bool:
        return room_id not in self.not_rooms and (self.rooms is None or room_id in self.rooms)

    def wants_type(self, event_type: str) -> bool:
        if any(fnmatchcase(event_type, p) for p in self.not_types):
            return False
        return self.types is None or any(fnmatchcase(event_type, p) for p in self.types)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequest(f"{where} must be a list of strings")
    return tuple(value)


def validate_filter(definition: Any) -> Mapping[str, Any]:
    """Check the shape of a filter definition; returns it unchanged."""
    parse_filter(definition)
    return definition


def parse_filter(definition: Any) -> SyncFilter:
    if not isinstance(definition, Mapping):
        raise InvalidRequest("a filter must be a JSON object")
    room = definition.get("room", {})
    if not isinstance(room, Mapping):
        raise InvalidRequest("filter.room must be an object")
    timeline = room.get("timeline", {})
    if not isinstance(timeline, Mapping):
        raise InvalidRequest("filter.room.timeline must be an object")
    limit = timeline.get("limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                              or limit < 0):
        raise InvalidRequest("filter.room.timeline.limit must be a non-negative integer")
    rooms = room.get("rooms")
    per_thread = timeline.get("unread_thread_notifications", False)
    if not isinstance(per_thread, bool):
        raise InvalidRequest("filter.room.timeline.unread_thread_notifications must be a "
                             "boolean")
    return SyncFilter(
        timeline_limit=limit,
        include_leave=bool(room.get("include_leave", False)),
        rooms=frozenset(_strings(rooms, "filter.room.rooms")) if rooms is not None else None,
        not_rooms=frozenset(_strings(room.get("not_rooms", []), "filter.room.not_rooms")),
        types=_strings(timeline["types"], "timeline.types") if "types" in timeline else None,
        not_types=_strings(timeline.get("not_types", []), "timeline.not_types"),
        unread_thread_notifications=per_thread,
    )
