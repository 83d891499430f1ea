"""Room state for a single server (spec: Server-Server API "Room State
Resolution", degenerate case).

Every room here has a linear event graph (each event's only prev_event is the
room's latest event) and every event is checked against the current state
before it is stored, so resolution is "the last accepted event for each
(type, state_key) wins": ``apply`` below.  Federation will replace this with
state resolution v2 over forks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from messenger.events.identifiers import create_event_id_of

StateKey = tuple[str, str]
StateMap = Mapping[StateKey, Mapping[str, Any]]


def is_state_event(event: Mapping[str, Any]) -> bool:
    return isinstance(event.get("state_key"), str)


def apply(state: StateMap, event: Mapping[str, Any]) -> dict[StateKey, Mapping[str, Any]]:
    """The room state after an accepted ``event``."""
    new = dict(state)
    if is_state_event(event):
        new[(event["type"], event["state_key"])] = event
    return new


def membership_of(state: StateMap, user_id: str) -> str:
    """``join``, ``invite``, ``leave``, ``ban``, ``knock`` or ``leave`` when absent."""
    event = state.get(("m.room.member", user_id))
    if event is None:
        return "leave"
    membership = (event.get("content") or {}).get("membership")
    return membership if isinstance(membership, str) else "leave"


def join_rule(state: StateMap) -> str:
    event = state.get(("m.room.join_rules", ""))
    if event is None:
        return "invite"  # the spec's default when the event is missing
    rule = (event.get("content") or {}).get("join_rule")
    return rule if isinstance(rule, str) else "invite"


def auth_state_keys(event_type: str, sender: str, state_key: str | None,
                    content: Mapping[str, Any]) -> list[StateKey]:
    """The state an event's auth events are chosen from (spec S2S "Auth events selection")."""
    keys: list[StateKey] = [("m.room.create", ""), ("m.room.power_levels", ""),
                            ("m.room.member", sender)]
    if event_type == "m.room.member" and state_key is not None:
        keys.append(("m.room.member", state_key))
        if content.get("membership") in ("join", "invite", "knock"):
            keys.append(("m.room.join_rules", ""))
    return list(dict.fromkeys(keys))


def implied_create_id(event: Mapping[str, Any]) -> str | None:
    """The create event a room version 12 event names through its room id (MSC4291:
    never in its ``auth_events``); None for older rooms and for the create itself."""
    room_id = event.get("room_id")
    if not isinstance(room_id, str) or (event.get("type") == "m.room.create"
                                        and event.get("state_key") == ""):
        return None
    return create_event_id_of(room_id)


def auth_event_ids(event: Mapping[str, Any]) -> list[str]:
    """The event's auth events as the auth rules and state resolution follow them: its
    ``auth_events`` and, in a room version 12 room, the create event its room id names."""
    listed = [a for a in event.get("auth_events") or [] if isinstance(a, str)]
    create = implied_create_id(event)
    return listed if create is None or create in listed else [*listed, create]


def selected_auth_events(event_type: str, sender: str, state_key: str | None,
                         content: Mapping[str, Any], room_id: str,
                         state: Mapping[StateKey, Mapping[str, Any]]) -> list[str]:
    """The ``auth_events`` of a new event (spec S2S "Auth events selection"): from
    ``state``, without the create event in a room version 12 room."""
    if event_type == "m.room.create":
        return []
    skip_create = create_event_id_of(room_id) is not None
    return [state[k]["event_id"]
            for k in auth_state_keys(event_type, sender, state_key, content)
            if k in state and not (skip_create and k == ("m.room.create", ""))]
