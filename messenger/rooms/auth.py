"""Authorization rules for room versions 10, 11 and 12 (spec: Room Version 10,
"Authorization rules"; Room Version 12: MSC4289 privileged creators, MSC4291
room ids as the create event's hash; the shape follows synapse/event_auth.py).

``check_event`` is pure: it takes the event and the room state *before* it and
raises ``AuthRuleViolation`` with a reason a person can read.  Not supported
yet (refused): knocking, restricted joins, third-party invites.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from messenger.events.identifiers import (
    create_event_id_of,
    is_historical_user_id,
    is_user_id,
    room_id_of_create,
    server_of,
)
from messenger.events.room_versions import RoomVersion, room_version
from messenger.rooms.errors import AuthRuleViolation
from messenger.rooms.power import PowerLevels, power_levels, privileged_creators, room_creator
from messenger.rooms.state import StateMap, join_rule, membership_of

_PL_LEVEL_KEYS = ("users_default", "events_default", "state_default", "ban", "redact",
                  "kick", "invite")


def check_event(event: Mapping[str, Any], state: StateMap, version: RoomVersion) -> None:
    """Allow ``event`` given ``state`` (the room state before it), else raise."""
    event_type = event.get("type")
    sender = event.get("sender")
    content = event.get("content")
    if not isinstance(event_type, str) or not is_user_id(sender) or \
            not isinstance(content, Mapping):
        raise AuthRuleViolation("malformed event")

    # Rule 1: m.room.create.
    if event_type == "m.room.create":
        _check_create(event, version)
        return
    create = state.get(("m.room.create", ""))
    if create is None:
        raise AuthRuleViolation("the room has no create event")
    if version.room_id_is_create_hash and "event_id" in create and \
            create_event_id_of(str(event.get("room_id", ""))) != create["event_id"]:
        raise AuthRuleViolation("the room id does not name this create event")

    levels = power_levels(state)
    # Rule 4 (v10): m.room.member.
    if event_type == "m.room.member":
        _check_member(event, state, levels, create)
        return

    # Rule 5: the sender must be in the room.
    if membership_of(state, sender) != "join":
        raise AuthRuleViolation(f"{sender} is not in the room")
    state_key = event.get("state_key")
    is_state = isinstance(state_key, str)
    # Rule 7: the sender's level must reach the event's required level.
    required = levels.event_level(event_type, is_state)
    if levels.user_level(sender) < required:
        raise AuthRuleViolation(
            f"sending {event_type} needs power level {required}, "
            f"{sender} has {levels.user_level(sender)}")
    # Rule 8: a state key that is a user id can only be set by that user.
    if isinstance(state_key, str) and state_key.startswith("@") and state_key != sender:
        raise AuthRuleViolation("only the user named in the state key may set this state")
    # Rule 9: power-level changes.
    if event_type == "m.room.power_levels":
        _check_power_levels(event, state, levels)
        users = content.get("users")
        if isinstance(users, Mapping) and privileged_creators(create) & set(users):
            raise AuthRuleViolation("the room's creators must not be listed in users")


def _check_create(event: Mapping[str, Any], version: RoomVersion) -> None:
    if event.get("prev_events"):
        raise AuthRuleViolation("a create event has no previous events")
    if version.room_id_is_create_hash:
        # On the wire the create event has no room_id (pdu_checks refuses one); in
        # memory we carry the one its hash makes.
        event_id = event.get("event_id")
        if "room_id" in event and (not isinstance(event_id, str)
                                   or event["room_id"] != room_id_of_create(event_id)):
            raise AuthRuleViolation("a create event has no room_id")
    elif server_of(event.get("room_id", "")) != server_of(event["sender"]):
        raise AuthRuleViolation("the room id's server must be the creator's server")
    content = event["content"]
    try:
        if room_version(str(content.get("room_version", "1"))) != version:
            raise AuthRuleViolation("room_version does not match the room")
    except ValueError as exc:
        raise AuthRuleViolation(str(exc)) from None
    if not version.implicit_room_creator and not is_user_id(content.get("creator")):
        raise AuthRuleViolation("the create event needs a creator before room version 11")
    if version.privileged_creators and "additional_creators" in content:
        extra = content["additional_creators"]
        if not isinstance(extra, list) or not all(is_historical_user_id(u) for u in extra):
            raise AuthRuleViolation("additional_creators must be a list of user ids")


def _check_member(event: Mapping[str, Any], state: StateMap, levels: PowerLevels,
                  create: Mapping[str, Any]) -> None:
    sender = event["sender"]
    target = event.get("state_key")
    membership = event["content"].get("membership")
    if not isinstance(target, str) or not is_user_id(target) or not isinstance(membership, str):
        raise AuthRuleViolation("a member event needs a user id state key and a membership")
    if event["content"].get("third_party_invite") is not None:
        raise AuthRuleViolation("third-party invites are not supported")
    sender_membership = membership_of(state, sender)
    target_membership = membership_of(state, target)
    sender_level, target_level = levels.user_level(sender), levels.user_level(target)

    if membership == "join":
        # The creator's own first join, right after the create event.
        prev = event.get("prev_events") or []
        if target == room_creator(create) and prev == [create.get("event_id")]:
            return
        if sender != target:
            raise AuthRuleViolation("users can only join for themselves")
        if sender_membership == "ban":
            raise AuthRuleViolation(f"{sender} is banned from the room")
        rule = join_rule(state)
        if rule == "public":
            return
        if rule in ("invite", "knock") and sender_membership in ("join", "invite"):
            return
        raise AuthRuleViolation("the room is invite-only and you have not been invited")

    if membership == "invite":
        if sender_membership != "join":
            raise AuthRuleViolation(f"{sender} is not in the room and cannot invite")
        if target_membership in ("join", "ban"):
            raise AuthRuleViolation(
                f"{target} is {'already in' if target_membership == 'join' else 'banned from'}"
                " the room")
        if sender_level < levels.invite:
            raise AuthRuleViolation(
                f"inviting needs power level {levels.invite}, {sender} has {sender_level}")
        return

    if membership == "leave":
        if sender == target:
            if sender_membership in ("join", "invite", "knock"):
                return
            raise AuthRuleViolation(f"{sender} is not in the room")
        if sender_membership != "join":
            raise AuthRuleViolation(f"{sender} is not in the room")
        if target_membership == "ban" and sender_level < levels.ban:
            raise AuthRuleViolation(
                f"unbanning needs power level {levels.ban}, {sender} has {sender_level}")
        if sender_level >= levels.kick and target_level < sender_level:
            return
        raise AuthRuleViolation(
            f"kicking needs power level {levels.kick} and more than the target's "
            f"({target_level}); {sender} has {sender_level}")

    if membership == "ban":
        if sender_membership != "join":
            raise AuthRuleViolation(f"{sender} is not in the room")
        if sender_level >= levels.ban and target_level < sender_level:
            return
        raise AuthRuleViolation(
            f"banning needs power level {levels.ban} and more than the target's "
            f"({target_level}); {sender} has {sender_level}")

    raise AuthRuleViolation(f"membership {membership!r} is not supported")


def _validate_levels(content: Mapping[str, Any]) -> None:
    for key in (*_PL_LEVEL_KEYS, "notifications"):
        value = content.get(key)
        if key == "notifications":
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise AuthRuleViolation("notifications must be an object")
            values = list(value.values())
        else:
            values = [] if value is None else [value]
        for v in values:
            if not isinstance(v, int) or isinstance(v, bool):
                raise AuthRuleViolation(f"power level {key} must be an integer")
    for key in ("users", "events"):
        mapping = content.get(key, {})
        if not isinstance(mapping, Mapping):
            raise AuthRuleViolation(f"{key} must be an object")
        for name, v in mapping.items():
            if key == "users" and not is_user_id(name):
                raise AuthRuleViolation(f"{name!r} in users is not a user id")
            if not isinstance(v, int) or isinstance(v, bool):
                raise AuthRuleViolation(f"power level for {name} must be an integer")


def _check_power_levels(event: Mapping[str, Any], state: StateMap,
                        levels: PowerLevels) -> None:
    content = event["content"]
    _validate_levels(content)
    old_event = state.get(("m.room.power_levels", ""))
    if old_event is None:
        return
    old = old_event.get("content") or {}
    sender = event["sender"]
    mine = levels.user_level(sender)

    def check_change(what: str, before: Any, after: Any) -> None:
        if before == after:
            return
        for level in (before, after):
            if level is not None and level > mine:
                raise AuthRuleViolation(
                    f"changing {what} from {before} to {after} needs power level "
                    f"above both; {sender} has {mine}")

    for key in _PL_LEVEL_KEYS:
        check_change(key, old.get(key), content.get(key))
    for key in ("events", "notifications"):
        before, after = old.get(key) or {}, content.get(key) or {}
        for name in set(before) | set(after):
            check_change(f"{key}.{name}", before.get(name), after.get(name))
    before_users, after_users = old.get("users") or {}, content.get("users") or {}
    for user in set(before_users) | set(after_users):
        b, a = before_users.get(user), after_users.get(user)
        if b == a:
            continue
        if user != sender and b is not None and b >= mine:
            raise AuthRuleViolation(
                f"{sender} cannot change the level of {user}, who has {b} (not below {mine})")
        if a is not None and a > mine:
            raise AuthRuleViolation(f"{sender} cannot give {user} level {a}, above own {mine}")
