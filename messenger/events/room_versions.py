"""The room versions this server creates and understands (spec: Room Versions).

All use event ids of format 4 (reference hash, URL-safe base64) and the v10
auth rules (integer power levels).  v11 changed the redaction algorithm and
where a redaction names its target; v12 (MSC4289, MSC4291, MSC4297) makes the
room id the create event's reference hash, gives the creators unlimited power
and resolves state with v2.1.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RoomVersion:
    identifier: str
    # Room version 11: create keeps all content, no top-level origin/membership/
    # prev_state, power levels keep "invite", redactions keep content.redacts.
    updated_redaction_rules: bool
    # Room version 11: m.room.create has no "creator"; the sender is the creator.
    implicit_room_creator: bool
    # Room version 11: "redacts" lives in the content of m.room.redaction.
    redacts_in_content: bool
    # Room version 12 (MSC4291): the room id is "!" + the create event's reference
    # hash; the create event has no room_id and is never listed in auth_events.
    room_id_is_create_hash: bool = False
    # Room version 12 (MSC4289): the create event's sender and additional_creators
    # have unlimited power and never appear in m.room.power_levels "users".
    privileged_creators: bool = False
    # Room version 12 (MSC4297): state resolution v2.1 (the power events replayed
    # from an empty state, the conflicted state subgraph in the full conflicted set).
    state_res_v2_1: bool = False


V10 = RoomVersion("10", updated_redaction_rules=False, implicit_room_creator=False,
                  redacts_in_content=False)
V11 = RoomVersion("11", updated_redaction_rules=True, implicit_room_creator=True,
                  redacts_in_content=True)
V12 = RoomVersion("12", updated_redaction_rules=True, implicit_room_creator=True,
                  redacts_in_content=True, room_id_is_create_hash=True,
                  privileged_creators=True, state_res_v2_1=True)

# Rooms of these versions can be joined, received and resolved.
KNOWN_ROOM_VERSIONS: dict[str, RoomVersion] = {v.identifier: v for v in (V10, V11, V12)}
# Rooms of these versions can be created here (and are offered in /capabilities).
CREATABLE_ROOM_VERSIONS: dict[str, RoomVersion] = {v.identifier: v for v in (V10, V11, V12)}
DEFAULT_ROOM_VERSION = V10  # the spec's recommended default for v1.12 clients


class UnsupportedRoomVersion(ValueError):
    pass


def room_version(identifier: str) -> RoomVersion:
    try:
        return KNOWN_ROOM_VERSIONS[identifier]
    except KeyError:
        raise UnsupportedRoomVersion(f"room version {identifier!r} is not supported") from None
