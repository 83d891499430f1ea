"""Power levels (spec: Client-Server API, m.room.power_levels; room version 10
auth rules for the defaults used when no power-levels event exists; room version
12, MSC4289: the creators' unlimited power)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from messenger.events.room_versions import UnsupportedRoomVersion, room_version
from messenger.rooms.state import StateMap

# Above any level an event can carry (canonical JSON integers stop at 2**53 - 1).
CREATOR_LEVEL = 2**53


@dataclass(frozen=True)
class PowerLevels:
    users: Mapping[str, int] = field(default_factory=dict)
    users_default: int = 0
    events: Mapping[str, int] = field(default_factory=dict)
    events_default: int = 0
    state_default: int = 50
    ban: int = 50
    kick: int = 50
    redact: int = 50
    invite: int = 0
    # Room version 12: the creators, above every level ("infinite" in MSC4289).
    creators: frozenset[str] = frozenset()

    def user_level(self, user_id: str) -> int:
        if user_id in self.creators:
            return CREATOR_LEVEL
        return self.users.get(user_id, self.users_default)

    def event_level(self, event_type: str, is_state: bool) -> int:
        if event_type in self.events:
            return self.events[event_type]
        return self.state_default if is_state else self.events_default


def _int(value: Any, default: int) -> int:
    # Room version 10 makes non-integers invalid; the auth rules already refused
    # any event that carried one, so a stored value is an int or missing.
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def power_levels_from_content(content: Mapping[str, Any],
                              creators: frozenset[str] = frozenset()) -> PowerLevels:
    users = content.get("users")
    events = content.get("events")
    if not isinstance(users, Mapping):
        users = {}
    if not isinstance(events, Mapping):
        events = {}
    return PowerLevels(
        users={k: _int(v, 0) for k, v in users.items()},
        users_default=_int(content.get("users_default"), 0),
        events={k: _int(v, 0) for k, v in events.items()},
        events_default=_int(content.get("events_default"), 0),
        state_default=_int(content.get("state_default"), 50),
        ban=_int(content.get("ban"), 50),
        kick=_int(content.get("kick"), 50),
        redact=_int(content.get("redact"), 50),
        invite=_int(content.get("invite"), 0),
        creators=creators,
    )


def room_creator(create_event: Mapping[str, Any]) -> str:
    """The creator: ``content.creator`` before v11, else the sender (both agree here)."""
    content = create_event.get("content") or {}
    creator = content.get("creator")
    return creator if isinstance(creator, str) else create_event["sender"]


def privileged_creators(create_event: Mapping[str, Any] | None) -> frozenset[str]:
    """Room version 12 (MSC4289): the create event's sender and ``additional_creators``
    (the auth rules refused a create event whose list is not of user ids); empty in
    older rooms, where the creators are ordinary users of ``m.room.power_levels``."""
    if create_event is None:
        return frozenset()
    content = create_event.get("content") or {}
    try:
        if not room_version(str(content.get("room_version", "1"))).privileged_creators:
            return frozenset()
    except UnsupportedRoomVersion:
        return frozenset()
    extra = content.get("additional_creators")
    extra = [u for u in extra if isinstance(u, str)] if isinstance(extra, list) else []
    return frozenset([create_event["sender"], *extra])


def power_levels(state: StateMap) -> PowerLevels:
    """The room's power levels; without an event the creator has 100, others 0 (from
    room version 12 the creators are above every level, with or without one)."""
    create = state.get(("m.room.create", ""))
    creators = privileged_creators(create)
    event = state.get(("m.room.power_levels", ""))
    if event is not None:
        return power_levels_from_content(event.get("content") or {}, creators)
    if creators:
        return PowerLevels(state_default=0, creators=creators)
    users = {room_creator(create): 100} if create is not None else {}
    # No power-levels event: state_default is 0 (spec, m.room.power_levels).
    return PowerLevels(users=users, state_default=0)
