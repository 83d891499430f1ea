"""Power levels (spec: Client-Server API, m.room.power_levels; room version 10
auth rules for the defaults used when no power-levels event exists)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from messenger.rooms.state import StateMap


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

    def user_level(self, user_id: str) -> int:
        return self.users.get(user_id, self.users_default)

    def event_level(self, event_type: str, is_state: bool) -> int:
        if event_type in self.events:
            return self.events[event_type]
        return self.state_default if is_state else self.events_default


def _int(value: Any, default: int) -> int:
    # Room version 10 makes non-integers invalid; the auth rules already refused
    # any event that carried one, so a stored value is an int or missing.
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def power_levels_from_content(content: Mapping[str, Any]) -> PowerLevels:
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
    )


def room_creator(create_event: Mapping[str, Any]) -> str:
    """The creator: ``content.creator`` before v11, else the sender (both agree here)."""
    content = create_event.get("content") or {}
    creator = content.get("creator")
    return creator if isinstance(creator, str) else create_event["sender"]


def power_levels(state: StateMap) -> PowerLevels:
    """The room's power levels; without an event the creator has 100, others 0."""
    event = state.get(("m.room.power_levels", ""))
    if event is not None:
        return power_levels_from_content(event.get("content") or {})
    create = state.get(("m.room.create", ""))
    users = {room_creator(create): 100} if create is not None else {}
    # No power-levels event: state_default is 0 (spec, m.room.power_levels).
    return PowerLevels(users=users, state_default=0)
