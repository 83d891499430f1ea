"""Pure checks on PDUs received from other servers (Server-Server API "Checks
performed on receipt of a PDU", steps 1 and 4; Room Version 10 "Authorization
rules" rule 2: the auth events must be the right ones).

``check_format`` refuses a PDU that is not the room version's event format;
``check_against_auth_events`` applies the auth rules to the state the event's
own ``auth_events`` describe, after checking that they are exactly events the
auth events selection would pick (no duplicates, nothing superfluous, all of
the same room).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from messenger.events.canonical import canonical_json
from messenger.events.hashing import event_id_for
from messenger.events.identifiers import (
    create_event_id_of,
    is_hashed_room_id,
    is_room_id,
    is_user_id,
    room_id_of_create,
)
from messenger.events.room_versions import RoomVersion
from messenger.rooms.auth import check_event
from messenger.rooms.errors import AuthRuleViolation
from messenger.rooms.state import StateKey, auth_state_keys, implied_create_id

MAX_PDU_BYTES = 65_536  # spec: "Size limits"
MAX_PREV_EVENTS = 20
MAX_AUTH_EVENTS = 10
MAX_DEPTH = 2**63 - 1


class MalformedPdu(ValueError):
    """Not an event of the room version's format."""


def _event_ids(value: object, name: str, limit: int) -> list[str]:
    if not isinstance(value, list) or len(value) > limit or not all(
            isinstance(v, str) and v.startswith("$") and len(v) <= 255 for v in value):
        raise MalformedPdu(f"{name} must be a list of at most {limit} event ids")
    if len(set(value)) != len(value):
        raise MalformedPdu(f"{name} names an event twice")
    return value


def _check_room_id(pdu: Mapping[str, Any], room_id: str | None,
                   version: RoomVersion | None) -> None:
    is_create = pdu.get("type") == "m.room.create" and pdu.get("state_key") == ""
    if version is not None and version.room_id_is_create_hash:
        # MSC4291: the create event has no room_id, its hash is the room id; every
        # other event names the room by that hash and never lists the create event.
        if is_create:
            if "room_id" in pdu:
                raise MalformedPdu("a room version 12 create event has no room_id")
            if room_id is not None:
                try:
                    own = room_id_of_create(event_id_for(pdu, version))
                except (TypeError, ValueError, AttributeError):
                    raise MalformedPdu("not canonical JSON") from None
                if own != room_id:
                    raise MalformedPdu("the create event is of another room")
            return
        if not is_hashed_room_id(pdu.get("room_id")):
            raise MalformedPdu("room_id is not a room version 12 room id")
        create = create_event_id_of(str(pdu["room_id"]))
        if isinstance(pdu.get("auth_events"), list) and create in pdu["auth_events"]:
            raise MalformedPdu("auth_events must not list the create event")
    elif version is not None and is_hashed_room_id(pdu.get("room_id")):
        raise MalformedPdu("room_id is not of this room version")
    if not is_room_id(pdu.get("room_id")) or (room_id is not None
                                              and pdu.get("room_id") != room_id):
        raise MalformedPdu("room_id is missing or wrong")


def check_format(pdu: Mapping[str, Any], room_id: str | None = None,
                 version: RoomVersion | None = None) -> None:
    """Raise ``MalformedPdu`` unless ``pdu`` has the v4+ event format's keys and types
    (with ``version``, also its room id rules: a v12 create event has none)."""
    if not is_user_id(pdu.get("sender")):
        raise MalformedPdu("sender is not a user id")
    if not isinstance(pdu.get("type"), str) or not pdu["type"] or len(pdu["type"]) > 255:
        raise MalformedPdu("type must be a string")
    if "state_key" in pdu and (not isinstance(pdu["state_key"], str)
                               or len(pdu["state_key"]) > 255):
        raise MalformedPdu("state_key must be a string")
    if not isinstance(pdu.get("content"), dict):
        raise MalformedPdu("content must be an object")
    for name in ("depth", "origin_server_ts"):
        value = pdu.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_DEPTH:
            raise MalformedPdu(f"{name} must be a non-negative integer")
    _event_ids(pdu.get("prev_events"), "prev_events", MAX_PREV_EVENTS)
    _event_ids(pdu.get("auth_events"), "auth_events", MAX_AUTH_EVENTS)
    hashes = pdu.get("hashes")
    if not isinstance(hashes, dict) or not isinstance(hashes.get("sha256"), str):
        raise MalformedPdu("hashes.sha256 is missing")
    if not isinstance(pdu.get("signatures"), dict):
        raise MalformedPdu("signatures are missing")
    if "event_id" in pdu and not isinstance(pdu["event_id"], str):
        raise MalformedPdu("event_id must be a string")
    _check_room_id(pdu, room_id, version)  # last: a v12 create's is checked by hashing it
    try:
        size = len(canonical_json({k: v for k, v in pdu.items() if k != "event_id"}))
    except (TypeError, ValueError):
        raise MalformedPdu("not canonical JSON") from None
    if size > MAX_PDU_BYTES:
        raise MalformedPdu(f"a PDU is at most {MAX_PDU_BYTES} bytes")


def auth_state_of(pdu: Mapping[str, Any], auth_events: Mapping[str, Mapping[str, Any]]
                  ) -> dict[StateKey, Mapping[str, Any]]:
    """The state the event's ``auth_events`` describe (and in a room version 12 room
    the create event its room id names, which ``auth_events`` must hold: see
    ``state.auth_event_ids``); raises ``AuthRuleViolation`` if one is missing, of
    another room, not a state event, a duplicate key or not one the selection
    algorithm picks for this event."""
    allowed = set(auth_state_keys(pdu["type"], pdu["sender"], pdu.get("state_key"),
                                  pdu.get("content") or {}))
    state: dict[StateKey, Mapping[str, Any]] = {}
    implied = implied_create_id(pdu)
    for event_id in pdu.get("auth_events") or []:
        event = auth_events.get(event_id)
        if event is None:
            raise AuthRuleViolation(f"auth event {event_id} is unknown")
        if implied is not None and event.get("type") == "m.room.create" \
                and event.get("state_key") == "":
            raise AuthRuleViolation("the auth events list the create event (room version 12)")
        if event.get("room_id") != pdu.get("room_id"):
            raise AuthRuleViolation(f"auth event {event_id} is of another room")
        state_key = event.get("state_key")
        if not isinstance(state_key, str):
            raise AuthRuleViolation(f"auth event {event_id} is not a state event")
        key = (str(event.get("type")), state_key)
        if key in state:
            raise AuthRuleViolation(f"two auth events for {key}")
        if key not in allowed:
            raise AuthRuleViolation(f"auth event {event_id} ({key}) is not relevant")
        state[key] = event
    if implied is not None:  # room version 12: the room id names the create event
        create = auth_events.get(implied)
        if create is None:
            raise AuthRuleViolation(f"the create event {implied} is unknown")
        state[("m.room.create", "")] = create
    if pdu.get("type") != "m.room.create" and ("m.room.create", "") not in state:
        raise AuthRuleViolation("the auth events lack the create event")
    return state


def check_against_auth_events(pdu: Mapping[str, Any],
                              auth_events: Mapping[str, Mapping[str, Any]],
                              version: RoomVersion) -> None:
    """Step 4 of the receipt checks: raise ``AuthRuleViolation`` if the event is not
    allowed by the state its auth events describe."""
    check_event(pdu, auth_state_of(pdu, auth_events), version)
