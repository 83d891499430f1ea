"""Room version 10/11 authorization rules: who may join, invite, kick, ban, send, set state."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import pytest

from messenger.events.room_versions import V10, V11, RoomVersion
from messenger.rooms.auth import check_event
from messenger.rooms.errors import AuthRuleViolation
from messenger.rooms.state import apply

S = "schule.test"
OWNER, MOD, ALICE, BOB, EVE = (f"@{n}:{S}" for n in ("owner", "mod", "alice", "bob", "eve"))
ROOM = f"!room:{S}"


class Room:
    """A room's state built event by event through the auth rules."""

    def __init__(self, version: RoomVersion = V10) -> None:
        self.version = version
        self.state: dict[tuple[str, str], Mapping[str, Any]] = {}
        self.latest: str | None = None
        self._ids = itertools.count(1)

    def event(self, sender: str, event_type: str, content: dict[str, Any],
              state_key: str | None = None) -> dict[str, Any]:
        event = {"room_id": ROOM, "sender": sender, "type": event_type, "content": content,
                 "prev_events": [self.latest] if self.latest else [],
                 "event_id": f"$e{next(self._ids)}"}
        if state_key is not None:
            event["state_key"] = state_key
        return event

    def send(self, sender: str, event_type: str, content: dict[str, Any],
             state_key: str | None = None) -> None:
        """Check and apply; raises AuthRuleViolation when refused."""
        event = self.event(sender, event_type, content, state_key)
        check_event(event, self.state, self.version)
        self.state = apply(self.state, event)
        self.latest = event["event_id"]

    def allowed(self, sender: str, event_type: str, content: dict[str, Any],
                state_key: str | None = None) -> bool:
        try:
            check_event(self.event(sender, event_type, content, state_key), self.state,
                        self.version)
        except AuthRuleViolation:
            return False
        return True

    def member(self, sender: str, target: str, membership: str) -> None:
        self.send(sender, "m.room.member", {"membership": membership}, target)

    def may_member(self, sender: str, target: str, membership: str) -> bool:
        return self.allowed(sender, "m.room.member", {"membership": membership}, target)


def new_room(join_rule: str = "invite", version: RoomVersion = V10,
             **levels: Any) -> Room:
    room = Room(version)
    create = {"room_version": version.identifier}
    if not version.implicit_room_creator:
        create["creator"] = OWNER
    room.send(OWNER, "m.room.create", create, "")
    room.member(OWNER, OWNER, "join")
    power = {"users": {OWNER: 100, MOD: 50}, "users_default": 0, "events_default": 0,
             "state_default": 50, "ban": 50, "kick": 50, "redact": 50, "invite": 0,
             "events": {"m.room.power_levels": 100, "m.room.name": 50}}
    power.update(levels)
    room.send(OWNER, "m.room.power_levels", power, "")
    room.send(OWNER, "m.room.join_rules", {"join_rule": join_rule}, "")
    return room


def test_create_event_rules() -> None:
    room = Room()
    assert room.allowed(OWNER, "m.room.create", {"room_version": "10", "creator": OWNER}, "")
    assert not room.allowed(OWNER, "m.room.create", {"room_version": "10"}, "")  # v10: creator
    assert not room.allowed("@x:elsewhere.test", "m.room.create",
                            {"room_version": "10", "creator": "@x:elsewhere.test"}, "")
    assert not room.allowed(OWNER, "m.room.create", {"room_version": "11"}, "")  # wrong version
    assert Room(V11).allowed(OWNER, "m.room.create", {"room_version": "11"}, "")
    room.latest = "$something"
    assert not room.allowed(OWNER, "m.room.create", {"room_version": "10", "creator": OWNER},
                            "")


def test_nothing_without_a_create_event() -> None:
    room = Room()
    assert not room.may_member(OWNER, OWNER, "join")
    assert not room.allowed(OWNER, "m.room.message", {"body": "x"})


def test_only_the_creator_joins_first() -> None:
    room = Room()
    room.send(OWNER, "m.room.create", {"room_version": "10", "creator": OWNER}, "")
    assert not room.may_member(ALICE, ALICE, "join")
    assert room.may_member(OWNER, OWNER, "join")


@pytest.mark.parametrize("version", [V10, V11])
def test_invite_only_rooms_need_an_invite(version: RoomVersion) -> None:
    room = new_room("invite", version)
    assert not room.may_member(ALICE, ALICE, "join")
    room.member(OWNER, ALICE, "invite")
    assert room.may_member(ALICE, ALICE, "join")
    assert not room.may_member(OWNER, ALICE, "join")  # nobody joins for someone else
    room.member(ALICE, ALICE, "join")


def test_public_rooms_let_anyone_join_but_not_the_banned() -> None:
    room = new_room("public")
    assert room.may_member(ALICE, ALICE, "join")
    room.member(OWNER, EVE, "ban")
    assert not room.may_member(EVE, EVE, "join")


def test_invite_rules() -> None:
    room = new_room("invite", invite=50)
    room.member(OWNER, MOD, "invite")
    room.member(MOD, MOD, "join")
    room.member(OWNER, ALICE, "invite")
    room.member(ALICE, ALICE, "join")
    assert not room.may_member(ALICE, BOB, "invite")  # level 0 < invite 50
    assert room.may_member(MOD, BOB, "invite")
    assert not room.may_member(BOB, EVE, "invite")  # not in the room
    assert not room.may_member(MOD, ALICE, "invite")  # already joined
    room.member(OWNER, EVE, "ban")
    assert not room.may_member(MOD, EVE, "invite")  # banned


def test_leave_kick_and_unban() -> None:
    room = new_room("public")
    for user in (MOD, ALICE, BOB):
        room.member(user, user, "join")
    assert room.may_member(ALICE, ALICE, "leave")
    assert not room.may_member(ALICE, BOB, "leave")  # level 0 cannot kick
    assert room.may_member(MOD, ALICE, "leave")  # 50 >= kick, 50 > 0
    assert not room.may_member(MOD, OWNER, "leave")  # not above the target
    assert not room.may_member(EVE, EVE, "leave")  # never was in the room
    room.member(OWNER, BOB, "ban")
    assert not room.may_member(ALICE, BOB, "leave")  # unban needs ban level
    assert room.may_member(MOD, BOB, "leave")
    assert not room.may_member(BOB, BOB, "leave")  # the banned cannot unban themselves


def test_ban_rules() -> None:
    room = new_room("public", ban=60)
    for user in (MOD, ALICE):
        room.member(user, user, "join")
    assert not room.may_member(MOD, ALICE, "ban")  # 50 < ban 60
    assert room.may_member(OWNER, ALICE, "ban")
    assert room.may_member(OWNER, EVE, "ban")  # outsiders can be banned pre-emptively
    assert not room.may_member(EVE, ALICE, "ban")


def test_sending_and_state_levels() -> None:
    room = new_room("public", events_default=10)
    room.member(ALICE, ALICE, "join")
    room.member(MOD, MOD, "join")
    assert not room.allowed(ALICE, "m.room.message", {"body": "hi"})  # 0 < 10
    assert room.allowed(MOD, "m.room.message", {"body": "hi"})
    assert not room.allowed(EVE, "m.room.message", {"body": "hi"})  # not joined
    assert not room.allowed(ALICE, "m.room.topic", {"topic": "x"}, "")  # state_default 50
    assert room.allowed(MOD, "m.room.topic", {"topic": "x"}, "")
    assert room.allowed(MOD, "m.room.name", {"name": "x"}, "")
    assert not room.allowed(MOD, "m.room.power_levels", {"users": {OWNER: 100}}, "")  # 100


def test_user_state_keys_belong_to_their_user() -> None:
    room = new_room("public", state_default=0)
    room.member(ALICE, ALICE, "join")
    assert room.allowed(ALICE, "x.status", {"v": 1}, ALICE)
    assert not room.allowed(ALICE, "x.status", {"v": 1}, BOB)


def test_power_level_changes() -> None:
    room = new_room("public", events={"m.room.power_levels": 50})
    room.member(MOD, MOD, "join")
    room.member(ALICE, ALICE, "join")
    base = {"users": {OWNER: 100, MOD: 50}, "users_default": 0, "events_default": 0,
            "state_default": 50, "ban": 50, "kick": 50, "redact": 50, "invite": 0,
            "events": {"m.room.power_levels": 50, "m.room.name": 50}}

    def change(sender: str, **updates: Any) -> bool:
        return room.allowed(sender, "m.room.power_levels", {**base, **updates}, "")

    assert change(MOD, users={OWNER: 100, MOD: 50, ALICE: 50})  # up to own level
    assert not change(MOD, users={OWNER: 100, MOD: 50, ALICE: 51})  # above own level
    assert not change(MOD, users={OWNER: 0, MOD: 50})  # demote someone above
    assert change(MOD, users={OWNER: 100, MOD: 10})  # demote oneself
    assert not change(MOD, kick=60)  # a level above one's own
    assert change(MOD, kick=40)
    assert not change(OWNER, kick="50")  # v10: integers only
    assert not change(OWNER, users={"not-a-user": 10, OWNER: 100})
    assert not change(OWNER, events={"m.room.name": 1.5})


def test_peer_at_same_level_cannot_be_changed() -> None:
    room = new_room("public", events={"m.room.power_levels": 50}, users={OWNER: 100, MOD: 50,
                                                                          ALICE: 50})
    room.member(MOD, MOD, "join")
    content = {"users": {OWNER: 100, MOD: 50, ALICE: 0}, "events": {"m.room.power_levels": 50}}
    assert not room.allowed(MOD, "m.room.power_levels", content, "")
    assert room.allowed(OWNER, "m.room.power_levels", content, "")


def test_without_power_levels_the_creator_has_100() -> None:
    room = Room()
    room.send(OWNER, "m.room.create", {"room_version": "10", "creator": OWNER}, "")
    room.member(OWNER, OWNER, "join")
    room.send(OWNER, "m.room.join_rules", {"join_rule": "public"}, "")
    room.member(ALICE, ALICE, "join")
    assert room.allowed(ALICE, "m.room.topic", {"topic": "x"}, "")  # state_default 0 then
    assert room.may_member(OWNER, ALICE, "leave")  # 100 > 0
    assert not room.may_member(ALICE, OWNER, "leave")


def test_unsupported_memberships_are_refused() -> None:
    room = new_room("public")
    assert not room.may_member(ALICE, ALICE, "knock")
    assert not room.may_member(ALICE, ALICE, "dance")
    assert not room.allowed(ALICE, "m.room.member", {"membership": "invite",
                                                     "third_party_invite": {}}, BOB)
