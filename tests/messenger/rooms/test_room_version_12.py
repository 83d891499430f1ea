"""Room version 12 (spec: Room Version 12; MSC4291 room ids as the create event's
hash, MSC4289 privileged creators, MSC4297 state resolution v2.1): the event
format, the auth rules and the resolution's two changes, each on a hand-worked
room compared with the same room in version 11."""

from __future__ import annotations

from typing import Any

import pytest

from messenger.events.hashing import add_hashes, event_id_for, wire_form
from messenger.events.identifiers import (
    create_event_id_of,
    is_hashed_room_id,
    is_room_id,
    room_id_of_create,
)
from messenger.events.room_versions import V11, V12, RoomVersion
from messenger.rooms.auth import check_event
from messenger.rooms.errors import AuthRuleViolation
from messenger.rooms.pdu_checks import MalformedPdu, auth_state_of, check_format
from messenger.rooms.power import CREATOR_LEVEL, power_levels
from messenger.rooms.state import auth_event_ids, selected_auth_events
from messenger.rooms.state_resolution import conflicted_subgraph, resolve_state
from tests.messenger.rooms.test_state_resolution import ALICE, BOB, CHARLIE, Fork

DAVE = "@dave:b.test"
POWER, JOIN_RULES, CREATE = ("m.room.power_levels", ""), ("m.room.join_rules", ""), \
    ("m.room.create", "")


def v12_room(additional_creators: list[str] | None = None) -> Fork:
    room = Fork({}, V12)
    content: dict[str, Any] = {"room_version": "12"}
    if additional_creators is not None:
        content["additional_creators"] = additional_creators
    assert room.send(ALICE, "m.room.create", content)
    assert room.send(ALICE, "m.room.member", {"membership": "join"}, ALICE)
    assert room.send(ALICE, "m.room.power_levels",
                     {"users": {BOB: 50}, "state_default": 50, "ban": 50, "kick": 50}, "")
    assert room.send(ALICE, "m.room.join_rules", {"join_rule": "public"}, "")
    for user in (BOB, CHARLIE):
        assert room.send(user, "m.room.member", {"membership": "join"}, user)
    return room


def on_wire(pdu: dict[str, Any]) -> dict[str, Any]:
    """As another server sends it (the test rooms' events are not signed)."""
    return {**wire_form(pdu), "signatures": {}}


def state_of(room: Fork) -> dict[tuple[str, str], dict[str, Any]]:
    return {k: room.events[v] for k, v in room.state.items()}


# --- event format (MSC4291) ---------------------------------------------------------------

def test_the_room_id_is_the_create_events_hash_and_the_create_event_has_none() -> None:
    room = v12_room()
    create_id = room.state[CREATE]
    assert room.room_id == "!" + create_id[1:] and is_hashed_room_id(room.room_id)
    assert is_room_id(room.room_id) and ":" not in room.room_id
    assert create_event_id_of(room.room_id) == create_id
    assert create_event_id_of("!old:a.test") is None
    create = room.events[create_id]
    sent = on_wire(create)
    assert "room_id" not in sent and "event_id" not in sent
    # The id is the same with or without the room id carried in memory.
    assert event_id_for(sent, V12) == event_id_for(create, V12) == create_id
    check_format(sent, room.room_id, V12)
    with pytest.raises(MalformedPdu, match="no room_id"):
        check_format({**sent, "room_id": room.room_id}, room.room_id, V12)
    with pytest.raises(MalformedPdu, match="another room"):
        check_format(sent, room_id_of_create("$" + "A" * 43), V12)


def test_other_events_name_the_create_event_only_through_the_room_id() -> None:
    room = v12_room()
    topic = room.send(BOB, "m.room.topic", {"topic": "Mathe"})
    assert topic
    pdu = room.events[topic]
    assert room.state[CREATE] not in pdu["auth_events"]
    assert auth_event_ids(pdu) == [*pdu["auth_events"], room.state[CREATE]]
    assert auth_event_ids(room.events[room.state[CREATE]]) == []
    check_format(on_wire(pdu), room.room_id, V12)
    listed = {**on_wire(pdu), "auth_events": [*pdu["auth_events"], room.state[CREATE]]}
    with pytest.raises(MalformedPdu, match="must not list the create event"):
        check_format(listed, room.room_id, V12)
    with pytest.raises(MalformedPdu, match="room version 12 room id"):
        check_format({**on_wire(pdu), "room_id": "!old:a.test"}, None, V12)
    with pytest.raises(MalformedPdu, match="not of this room version"):
        check_format(on_wire(pdu), None, V11)
    # The auth rules find the create event through the room id...
    auth = auth_state_of(pdu, room.events)
    assert auth[CREATE]["event_id"] == room.state[CREATE]
    # ...and refuse it among the listed auth events.
    with pytest.raises(AuthRuleViolation, match="list the create event"):
        auth_state_of({**pdu, "auth_events": listed["auth_events"]}, room.events)
    # A new event's selection leaves it out as well.
    assert room.state[CREATE] not in selected_auth_events(
        "m.room.message", BOB, None, {}, room.room_id, state_of(room))


def test_a_create_event_of_another_room_is_not_the_rooms() -> None:
    room, other = v12_room(), v12_room(additional_creators=[DAVE])
    state = {**state_of(room), CREATE: other.events[other.state[CREATE]]}
    with pytest.raises(AuthRuleViolation, match="does not name this create event"):
        check_event({"room_id": room.room_id, "sender": BOB, "type": "m.room.message",
                     "content": {"body": "x"}, "prev_events": []}, state, V12)


# --- auth rules (MSC4289) ----------------------------------------------------------------

@pytest.mark.parametrize(("extra", "allowed"), [
    ([DAVE], True), ([], True), ("@dave:b.test", False), ([DAVE, 5], False),
    (["not a user"], False),
])
def test_additional_creators_must_be_user_ids(extra: Any, allowed: bool) -> None:
    room = Fork({}, V12)
    assert bool(room.send(ALICE, "m.room.create",
                          {"room_version": "12", "additional_creators": extra})) is allowed


def test_creators_have_unlimited_power_and_stay_out_of_the_power_levels() -> None:
    room = v12_room(additional_creators=[DAVE])
    levels = power_levels(state_of(room))
    assert levels.user_level(ALICE) == levels.user_level(DAVE) == CREATOR_LEVEL
    assert levels.user_level(BOB) == 50 and levels.user_level(CHARLIE) == 0
    # Listing a creator in users is refused, whatever the level.
    assert not room.send(ALICE, "m.room.power_levels", {"users": {ALICE: 100}}, "")
    assert not room.send(ALICE, "m.room.power_levels", {"users": {DAVE: 1}}, "")
    # Nobody outranks a creator: Bob at the top of the levels cannot kick Alice...
    assert room.send(ALICE, "m.room.power_levels",
                     {"users": {BOB: 2**53 - 1}, "kick": 50}, "")
    assert not room.send(BOB, "m.room.member", {"membership": "leave"}, ALICE)
    # ...while Alice kicks Bob, and Dave (a creator, never joined) joins and bans.
    assert room.send(ALICE, "m.room.member", {"membership": "leave"}, BOB)
    assert room.send(DAVE, "m.room.member", {"membership": "join"}, DAVE)
    assert room.send(DAVE, "m.room.member", {"membership": "ban"}, CHARLIE)
    # Two creators cannot remove each other (neither is below the other).
    assert not room.send(DAVE, "m.room.member", {"membership": "ban"}, ALICE)


def test_without_power_levels_only_the_creators_have_power() -> None:
    room = Fork({}, V12)
    room.send(ALICE, "m.room.create", {"room_version": "12", "additional_creators": [DAVE]})
    room.send(ALICE, "m.room.member", {"membership": "join"}, ALICE)
    levels = power_levels(state_of(room))
    assert levels.user_level(ALICE) == levels.user_level(DAVE) == CREATOR_LEVEL
    assert levels.user_level(BOB) == 0 and levels.users == {}
    # In v11 the creator has 100 without a power-levels event, and others nothing more.
    v11 = Fork({}, V11)
    v11.send(ALICE, "m.room.create", {"room_version": "11", "additional_creators": [DAVE]})
    old = power_levels(state_of(v11))
    assert old.user_level(ALICE) == 100 and old.user_level(DAVE) == 0


def test_a_create_event_carrying_another_room_id_is_refused() -> None:
    room = v12_room()
    create = dict(room.events[room.state[CREATE]])
    check_event(create, {}, V12)
    with pytest.raises(AuthRuleViolation, match="no room_id"):
        check_event({**create, "room_id": "!x:a.test"}, {}, V12)


# --- state resolution v2.1 (MSC4297) ------------------------------------------------------

def _concurrent_join_rule(version: RoomVersion) -> tuple[Fork, str, str, str]:
    """Alice demotes Bob (level 50 -> 0) while Bob, still at 50, closes the room;
    both forks then take the demotion, so it is in both states (unconflicted) and
    only the join rules differ.  Returns the room, the demotion, Bob's and
    Alice's join rules."""
    if version.room_id_is_create_hash:
        room = v12_room()
    else:
        room = Fork({}, version)
        room.send(ALICE, "m.room.create", {"room_version": version.identifier})
        room.send(ALICE, "m.room.member", {"membership": "join"}, ALICE)
        room.send(ALICE, "m.room.power_levels",
                  {"users": {ALICE: 100, BOB: 50}, "state_default": 50}, "")
        room.send(ALICE, "m.room.join_rules", {"join_rule": "public"}, "")
        for user in (BOB, CHARLIE):
            room.send(user, "m.room.member", {"membership": "join"}, user)
    public = room.state[JOIN_RULES]
    a, b = room.fork(), room.fork()
    users = {} if version.privileged_creators else {ALICE: 100}
    demotion = a.send(ALICE, "m.room.power_levels", {"users": users, "state_default": 50},
                      "", ts=100)
    closed = b.send(BOB, "m.room.join_rules", {"join_rule": "invite"}, "", ts=200)
    assert demotion and closed
    b.state[POWER] = demotion  # b learns of the demotion: now the same in both states
    return room, demotion, closed, public


def _resolve_both_orders(version: RoomVersion) -> tuple[str, str, str]:
    """The two states of ``_concurrent_join_rule`` (both with the demotion, one with
    Bob's closed join rule) resolved with ``version``'s algorithm, in either order
    (the result must not depend on it; the demotion, unconflicted, holds): the
    resolved join rules, the public ones and Bob's closed ones."""
    room, demotion, closed, public = _concurrent_join_rule(version)
    a, b = dict(room.state), dict(room.state)
    a[POWER] = b[POWER] = demotion
    b[JOIN_RULES] = closed
    resolved = [resolve_state(sets, room.events, version) for sets in ([a, b], [b, a])]
    assert resolved[0] == resolved[1] and resolved[0][POWER] == demotion
    return resolved[0][JOIN_RULES], public, closed


def test_v2_1_replays_power_events_from_an_empty_state_not_the_unconflicted_one() -> None:
    # v2 (room v11): Bob's join rule is checked against the unconflicted state, which
    # holds the later demotion: refused, the room stays public.
    join_rules, public, _ = _resolve_both_orders(V11)
    assert join_rules == public
    # v2.1 (room v12): replayed from an empty state, Bob's change is judged by its own
    # auth events (Bob at 50, allowed when he made it) and it sorts after Alice's
    # older one: the room is closed; the demotion stays (unconflicted).
    join_rules, _, closed = _resolve_both_orders(V12)
    assert join_rules == closed


def test_the_conflicted_subgraph_holds_the_events_between_conflicted_ones() -> None:
    # Power levels P1 -> P2 -> P3 (each authorised by the one before); Dave joins
    # under P2.  One state holds P3, the other P1 and Dave's join: P2 is in both
    # auth chains (not in the auth difference) but lies between the conflicted P1
    # and P3, so v2.1 adds it to the full conflicted set.
    room = v12_room()
    p1 = room.state[POWER]
    p2 = room.send(ALICE, "m.room.power_levels", {"users": {BOB: 60}, "state_default": 50}, "")
    dave = room.send(DAVE, "m.room.member", {"membership": "join"}, DAVE)
    p3 = room.send(ALICE, "m.room.power_levels", {"users": {BOB: 70}, "state_default": 50}, "")
    assert p2 and dave and p3
    assert room.events[p3]["auth_events"].count(p2) == 1
    conflicted = {p1, p3}
    subgraph = conflicted_subgraph(room.events, conflicted)
    assert subgraph == {p1, p2, p3}
    # Nothing below P1 (it reaches no conflicted event) nor beside (Dave's join
    # is reached from no conflicted event).
    assert room.state[CREATE] not in subgraph and dave not in subgraph
    a = dict(room.state)
    b = {**room.state, POWER: p1}
    for sets in ([a, b], [b, a]):
        resolved = resolve_state(sets, room.events, V12)
        assert resolved[POWER] == p3 and resolved[("m.room.member", DAVE)] == dave


def test_v2_1_resolution_keeps_a_creator_above_a_concurrent_demotion_attempt() -> None:
    # Bob (level 100 here) and Alice (the creator) change the levels at once: the
    # creator's change sorts first (higher power) and Bob's is then checked
    # against it; the creator cannot be listed or demoted by anyone.
    room = v12_room()
    assert room.send(ALICE, "m.room.power_levels", {"users": {BOB: 100}, "state_default": 50},
                     "")
    a, b = room.fork(), room.fork()
    mine = a.send(ALICE, "m.room.power_levels", {"users": {BOB: 0}, "state_default": 50}, "",
                  ts=900)
    his = b.send(BOB, "m.room.power_levels", {"users": {BOB: 100, CHARLIE: 100},
                                              "state_default": 50}, "", ts=100)
    assert mine and his
    for sets in ([a.state, b.state], [b.state, a.state]):
        assert resolve_state(sets, room.events, V12)[POWER] == mine


def test_a_hashed_create_is_made_like_any_event() -> None:
    # add_hashes and event_id_for agree whether or not the room id is carried.
    pdu = {"sender": ALICE, "type": "m.room.create", "state_key": "",
           "content": {"room_version": "12"}, "origin_server_ts": 1, "depth": 1,
           "prev_events": [], "auth_events": []}
    hashed = add_hashes(pdu)
    event_id = event_id_for(hashed, V12)
    carried = {**hashed, "room_id": room_id_of_create(event_id)}
    assert add_hashes(carried)["hashes"] == hashed["hashes"]
    assert event_id_for(carried, V12) == event_id
