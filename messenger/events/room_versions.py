"""The room versions this server creates and understands (spec: Room Versions).

Both use event ids of format 4 (reference hash, URL-safe base64) and the v10
auth rules (integer power levels).  They differ in the redaction algorithm and
where a redaction names its target.
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


V10 = RoomVersion("10", updated_redaction_rules=False, implicit_room_creator=False,
                  redacts_in_content=False)
V11 = RoomVersion("11", updated_redaction_rules=True, implicit_room_creator=True,
                  redacts_in_content=True)

KNOWN_ROOM_VERSIONS: dict[str, RoomVersion] = {v.identifier: v for v in (V10, V11)}
DEFAULT_ROOM_VERSION = V10  # the spec's recommended default for v1.12 clients


class UnsupportedRoomVersion(ValueError):
    pass


def room_version(identifier: str) -> RoomVersion:
    try:
        return KNOWN_ROOM_VERSIONS[identifier]
    except KeyError:
        raise UnsupportedRoomVersion(f"room version {identifier!r} is not supported") from None
