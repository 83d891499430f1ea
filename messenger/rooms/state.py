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
