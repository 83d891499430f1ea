"""State resolution v2 (spec: Room Version 2 "State resolution", used by room
versions 10 and 11) and v2.1 (room version 12, MSC4297: the power events are
replayed from an empty state instead of the unconflicted state map, and the
conflicted state subgraph joins the full conflicted set): the room state before
an event whose ``prev_events`` saw different states, as every server computes
it alike.

Pure: the caller passes the state maps (key -> event id) and every event they
and their auth chains name (as stored: the PDU with its ``event_id``, which the
auth rules read); nothing here touches the database.  Steps and
names follow the spec's text: power events, unconflicted state map, full
conflicted set, reverse topological power ordering, mainline ordering,
iterative auth checks.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from messenger.events.room_versions import RoomVersion
from messenger.rooms.auth import check_event
from messenger.rooms.errors import AuthRuleViolation
from messenger.rooms.power import power_levels
from messenger.rooms.state import StateKey, auth_event_ids, auth_state_keys

StateIds = Mapping[StateKey, str]
EventMap = Mapping[str, Mapping[str, Any]]
POWER_LEVELS: StateKey = ("m.room.power_levels", "")
CREATE: StateKey = ("m.room.create", "")


class MissingEvent(KeyError):
    """A state map or auth chain names an event the caller did not provide."""


def _event(events: EventMap, event_id: str) -> Mapping[str, Any]:
    try:
        return events[event_id]
    except KeyError:
        raise MissingEvent(event_id) from None


def _key(event: Mapping[str, Any]) -> StateKey:
    return (event["type"], event["state_key"])


def is_power_event(event: Mapping[str, Any]) -> bool:
    """Power levels, join rules, and kicks or bans (a leave/ban sent by someone else)."""
    if event.get("state_key") is None:
        return False
    if event["type"] in ("m.room.power_levels", "m.room.join_rules"):
        return event["state_key"] == ""
    if event["type"] == "m.room.member":
        membership = (event.get("content") or {}).get("membership")
        return membership in ("leave", "ban") and event["sender"] != event["state_key"]
    return False


def auth_chain(events: EventMap, event_ids: Iterable[str]) -> set[str]:
    """Every event reachable through ``auth_events`` from ``event_ids`` (not the ids
    themselves unless reachable)."""
    seen: set[str] = set()
    stack = [a for e in event_ids for a in auth_event_ids(_event(events, e))]
    while stack:
        event_id = stack.pop()
        if event_id not in seen:
            seen.add(event_id)
            stack.extend(auth_event_ids(_event(events, event_id)))
    return seen


def conflicted_subgraph(events: EventMap, conflicted: set[str]) -> set[str]:
    """State resolution v2.1 (MSC4297): the events on auth-chain paths between
    conflicted events, i.e. those reachable through ``auth_events`` from a conflicted
    event (or conflicted themselves) from which a conflicted event is reachable."""
    backwards = conflicted | auth_chain(events, conflicted)
    children: dict[str, list[str]] = {}
    for event_id in backwards:
        for parent in auth_event_ids(_event(events, event_id)):
            children.setdefault(parent, []).append(event_id)
    forwards: set[str] = set()
    stack = list(conflicted)
    while stack:
        event_id = stack.pop()
        if event_id not in forwards:
            forwards.add(event_id)
            stack.extend(children.get(event_id, ()))
    return backwards & forwards


def split_conflicts(state_sets: Sequence[StateIds]) -> tuple[dict[StateKey, str], set[str]]:
    """The unconflicted state map and the conflicted state set."""
    keys = {k for s in state_sets for k in s}
    unconflicted: dict[StateKey, str] = {}
    conflicted: set[str] = set()
    for key in keys:
        values = {s.get(key) for s in state_sets}
        present = {v for v in values if v is not None}
        if len(values) == 1 and len(present) == 1:  # in every set, the same event
            unconflicted[key] = present.pop()
        else:
            conflicted.update(present)
    return unconflicted, conflicted


def _sender_power(events: EventMap, event: Mapping[str, Any]) -> int:
    """The sender's level as the event's own auth events say (spec: "when looking
    at their respective auth_events")."""
    auth = {_key(a): a for a in (_event(events, i) for i in auth_event_ids(event))
            if a.get("state_key") is not None}
    return power_levels(auth).user_level(event["sender"])


def reverse_topological_power_order(events: EventMap, ids: set[str]) -> list[str]:
    """Kahn's algorithm over the auth DAG restricted to ``ids``, always taking the
    smallest candidate by (higher sender power, earlier ts, smaller event id)."""
    parents = {i: [a for a in auth_event_ids(_event(events, i)) if a in ids] for i in ids}
    children: dict[str, list[str]] = {i: [] for i in ids}
    for child, auth in parents.items():
        for parent in auth:
            children[parent].append(child)
    waiting = {i: len(parents[i]) for i in ids}

    def rank(event_id: str) -> tuple[int, int, str]:
        event = _event(events, event_id)
        return (-_sender_power(events, event), int(event.get("origin_server_ts", 0)), event_id)

    ready = [rank(i) for i in ids if waiting[i] == 0]
    heapq.heapify(ready)
    ordered: list[str] = []
    while ready:
        event_id = heapq.heappop(ready)[2]
        ordered.append(event_id)
        for child in children[event_id]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, rank(child))
    return ordered  # an auth cycle would leave events out: impossible for hashed ids


def _auth_power_levels(events: EventMap, event: Mapping[str, Any]) -> str | None:
    for auth_id in auth_event_ids(event):
        auth = _event(events, auth_id)
        if auth.get("type") == "m.room.power_levels" and auth.get("state_key") == "":
            return auth_id
    return None


def mainline_order(events: EventMap, ids: Iterable[str], power_event: str | None) -> list[str]:
    """``ids`` sorted by mainline position based on ``power_event`` (earlier mainline
    first), then origin_server_ts, then event id."""
    mainline: dict[str, int] = {}
    current = power_event
    while current is not None:
        mainline[current] = len(mainline)
        current = _auth_power_levels(events, _event(events, current))
    infinity = len(mainline) + 1

    def position(event_id: str) -> int:
        current = _auth_power_levels(events, _event(events, event_id))
        while current is not None:
            if current in mainline:
                return mainline[current]
            current = _auth_power_levels(events, _event(events, current))
        return infinity

    def rank(event_id: str) -> tuple[int, int, str]:
        event = _event(events, event_id)
        # A greater mainline position is *smaller* in the ordering (based on an
        # earlier power-levels event), so it sorts first.
        return (-position(event_id), int(event.get("origin_server_ts", 0)), event_id)

    return sorted(ids, key=rank)


def iterative_auth_checks(events: EventMap, ordered: Iterable[str], state: dict[StateKey, str],
                          version: RoomVersion) -> dict[StateKey, str]:
    """Apply each event in turn if the auth rules allow it against the state so far
    (missing keys taken from the event's own auth events)."""
    for event_id in ordered:
        event = _event(events, event_id)
        auth_state = {_key(a): a for a in (_event(events, i) for i in auth_event_ids(event))
                      if a.get("state_key") is not None}
        content = event.get("content") or {}
        for key in auth_state_keys(event["type"], event["sender"], event.get("state_key"),
                                   content):
            if key in state:
                auth_state[key] = _event(events, state[key])
        try:
            check_event(event, auth_state, version)
        except AuthRuleViolation:
            continue
        state[_key(event)] = event_id
    return state


def resolve_state(state_sets: Sequence[StateIds], events: EventMap,
                  version: RoomVersion) -> dict[StateKey, str]:
    """The resolution of ``state_sets`` (spec: "Algorithm", steps 1-5; v2.1 for the
    room versions that use it)."""
    if len(state_sets) == 1:
        return dict(state_sets[0])
    unconflicted, conflicted = split_conflicts(state_sets)
    if not conflicted:
        return unconflicted
    chains = [auth_chain(events, s.values()) for s in state_sets]
    auth_difference = set[str]().union(*chains) - chains[0].intersection(*chains[1:])
    full_conflicted = conflicted | auth_difference
    if version.state_res_v2_1:
        full_conflicted |= conflicted_subgraph(events, conflicted)
    # Step 1: power events and those of their auth chains in the full conflicted set.
    power = {i for i in full_conflicted if is_power_event(_event(events, i))}
    for event_id in list(power):
        power |= auth_chain(events, [event_id]) & full_conflicted
    # Step 2 (v2.1: from an empty state map, so an unconflicted event cannot hide a
    # conflicted power event's effect).
    base = {} if version.state_res_v2_1 else dict(unconflicted)
    partial = iterative_auth_checks(
        events, reverse_topological_power_order(events, power), base, version)
    # Steps 3-4: the rest by mainline of the partially resolved power levels.
    rest = mainline_order(events, full_conflicted - power, partial.get(POWER_LEVELS))
    resolved = iterative_auth_checks(events, rest, partial, version)
    # Step 5.
    resolved.update(unconflicted)
    return resolved
