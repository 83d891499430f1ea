"""What /createRoom puts into a new room (spec: Client-Server API 10.1.1
"Creation", POST /createRoom; presets private_chat, public_chat,
trusted_private_chat).  Pure: returns the state events in the order they are
sent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from messenger.events.room_versions import RoomVersion
from messenger.rooms.errors import InvalidRequest

PRESETS = ("private_chat", "public_chat", "trusted_private_chat")


@dataclass(frozen=True)
class CreateRoomRequest:
    preset: str = "private_chat"
    is_public: bool = False  # visibility "public": listed in the room directory
    name: str | None = None
    topic: str | None = None
    invite: tuple[str, ...] = ()
    is_direct: bool = False
    initial_state: tuple[tuple[str, str, Mapping[str, Any]], ...] = ()
    power_level_content_override: Mapping[str, Any] | None = None
    room_alias_name: str | None = None
    room_version: str | None = None
    creation_content: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StateTemplate:
    type: str
    state_key: str
    content: Mapping[str, Any]


def default_power_levels(creator: str, preset: str, invitees: tuple[str, ...],
                         privileged_creators: bool = False) -> dict[str, Any]:
    """The preset's levels; from room version 12 (MSC4289) the creators are above every
    level and never listed (a trusted private chat's invitees are creators too), and
    only they may replace the room (tombstone at 150, above the top of the levels)."""
    users = {} if privileged_creators else {creator: 100}
    if preset == "trusted_private_chat" and not privileged_creators:
        users.update({user: 100 for user in invitees})
    return {
        "users": users, "users_default": 0,
        "events": {
            "m.room.name": 50, "m.room.power_levels": 100, "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50, "m.room.avatar": 50,
            "m.room.tombstone": 150 if privileged_creators else 100,
            "m.room.server_acl": 100, "m.room.encryption": 100,
        },
        "events_default": 0, "state_default": 50, "ban": 50, "kick": 50, "redact": 50,
        # In public rooms anyone may join anyway; inviting is for moderators.
        "invite": 50 if preset == "public_chat" else 0,
        "notifications": {"room": 50},
    }


def initial_state(request: CreateRoomRequest, *, creator: str, creator_displayname: str,
                  version: RoomVersion, alias: str | None) -> list[StateTemplate]:
    """The create event, the creator's join, power levels, then the preset's state."""
    if request.preset not in PRESETS:
        raise InvalidRequest(f"unknown preset {request.preset!r}")
    create = {k: v for k, v in request.creation_content.items()
              if k not in ("room_version", "creator")}
    create["room_version"] = version.identifier
    if not version.implicit_room_creator:
        create["creator"] = creator
    if version.privileged_creators and request.preset == "trusted_private_chat" \
            and request.invite:
        extra = create.get("additional_creators")
        extra = list(extra) if isinstance(extra, list) else []
        create["additional_creators"] = list(dict.fromkeys([*extra, *request.invite]))
    power = default_power_levels(creator, request.preset, request.invite,
                                 version.privileged_creators)
    if request.power_level_content_override:
        power.update(request.power_level_content_override)
    events = [
        StateTemplate("m.room.create", "", create),
        StateTemplate("m.room.member", creator,
                      {"membership": "join", "displayname": creator_displayname}),
        StateTemplate("m.room.power_levels", "", power),
    ]
    if alias is not None:
        events.append(StateTemplate("m.room.canonical_alias", "", {"alias": alias}))
    preset_state: dict[tuple[str, str], Mapping[str, Any]] = {
        ("m.room.join_rules", ""): {
            "join_rule": "public" if request.preset == "public_chat" else "invite"},
        ("m.room.history_visibility", ""): {"history_visibility": "shared"},
        ("m.room.guest_access", ""): {"guest_access": "forbidden"},
    }
    for event_type, state_key, content in request.initial_state:
        if event_type in ("m.room.create", "m.room.member", "m.room.power_levels"):
            raise InvalidRequest(f"{event_type} cannot be set through initial_state")
        preset_state[(event_type, state_key)] = content  # initial_state beats the preset
    if request.name is not None:
        preset_state[("m.room.name", "")] = {"name": request.name}
    if request.topic is not None:
        preset_state[("m.room.topic", "")] = {"topic": request.topic}
    events.extend(StateTemplate(t, k, c) for (t, k), c in preset_state.items())
    return events
