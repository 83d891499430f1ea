"""State resolution v2 (spec: Room Version 2 "State resolution"): hand-worked cases
from the spec's rationale (a demotion beats what the demoted user did meanwhile, a
ban beats the banned user's concurrent changes, the later of two equal changes
wins) and, with hypothesis, that the result does not depend on the order in which
the forks are given (v2 for rooms v10/v11, v2.1 for v12; v2.1's own cases are in
test_room_version_12.py)."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from messenger.events.hashing import add_hashes, event_id_for
from messenger.events.identifiers import room_id_of_create
from messenger.events.room_versions import V10, V11, V12, RoomVersion
from messenger.rooms.auth import check_event
from messenger.rooms.errors import AuthRuleViolation
from messenger.rooms.state import StateKey, selected_auth_events
from messenger.rooms.state_resolution import resolve_state
from tests.support.properties import examples

ALICE, BOB, CHARLIE = "@alice:a.test", "@bob:a.test", "@charlie:b.test"
ROOM = "!room:a.test"


class Fork:
    """A linear run of events from a shared start; ``events`` is shared by all forks."""

    def __init__(self, events: dict[str, dict[str, Any]], version: RoomVersion,
                 state: dict[StateKey, str] | None = None, head: str | None = None,
                 ts: int = 0, room_id: str = ROOM) -> None:
        self.events = events
        self.version = version
        self.state = dict(state or {})
        self.head = head
        self.ts = ts
        # Room version 12: the create event's hash, known once it is sent.
        self.room_id = room_id

    def fork(self) -> Fork:
        return Fork(self.events, self.version, self.state, self.head, self.ts, self.room_id)

    def send(self, sender: str, event_type: str, content: dict[str, Any],
             state_key: str = "", ts: int | None = None) -> str | None:
        """Append the event if the auth rules allow it here; its id, else None."""
        self.ts = ts if ts is not None else self.ts + 1
        state = {k: self.events[v] for k, v in self.state.items()}
        v12_create = self.version.room_id_is_create_hash and event_type == "m.room.create"
        pdu: dict[str, Any] = {
            "sender": sender, "type": event_type, "state_key": state_key,
            "content": content, "origin_server_ts": self.ts,
            "depth": len(self.events) + 1, "prev_events": [self.head] if self.head else [],
            "auth_events": selected_auth_events(event_type, sender, state_key, content,
                                                self.room_id, state)}
        if not v12_create:  # a v12 create event has no room_id: its hash is the room id
            pdu["room_id"] = self.room_id
        pdu = add_hashes(pdu)
        event_id = event_id_for(pdu, self.version)
        if v12_create:
            self.room_id = room_id_of_create(event_id)
            pdu["room_id"] = self.room_id  # in memory, as stored events carry it
        try:
            check_event({**pdu, "event_id": event_id}, state, self.version)
        except AuthRuleViolation:
            return None
        self.events[event_id] = {**pdu, "event_id": event_id}  # as stored events carry it
        self.state[(event_type, state_key)] = event_id
        self.head = event_id
        return event_id


def creators_unlisted(version: RoomVersion, content: dict[str, Any]) -> dict[str, Any]:
    """Power levels as the room version wants them: from v12 the creator (Alice,
    above every level anyway) must not be listed in ``users``."""
    if not version.privileged_creators or "users" not in content:
        return content
    return {**content, "users": {u: v for u, v in content["users"].items() if u != ALICE}}


def base_room(version: RoomVersion = V11) -> Fork:
    room = Fork({}, version)
    create = {"room_version": version.identifier}
    if not version.implicit_room_creator:
        create["creator"] = ALICE
    room.send(ALICE, "m.room.create", create)
    room.send(ALICE, "m.room.member", {"membership": "join"}, ALICE)
    room.send(ALICE, "m.room.power_levels",
              creators_unlisted(version, {"users": {ALICE: 100, BOB: 50}, "state_default": 50,
                                          "ban": 50, "kick": 50, "events_default": 0,
                                          "users_default": 0}), "")
    room.send(ALICE, "m.room.join_rules", {"join_rule": "public"}, "")
    for user in (BOB, CHARLIE):
        assert room.send(user, "m.room.member", {"membership": "join"}, user)
    return room


def test_demotion_beats_what_the_demoted_user_did_meanwhile() -> None:
    room = base_room()
    a, b = room.fork(), room.fork()
    # The topic is older than the demotion: only the power-event-first order of
    # step 1-2 rejects it (by timestamps alone it would come first and pass).
    demotion = a.send(ALICE, "m.room.power_levels",
                      {"users": {ALICE: 100}, "state_default": 50}, "", ts=500)
    topic = b.send(BOB, "m.room.topic", {"topic": "Bob war hier"}, ts=100)
    assert demotion and topic
    for sets in ([a.state, b.state], [b.state, a.state]):
        resolved = resolve_state(sets, room.events, room.version)
        assert resolved[("m.room.power_levels", "")] == demotion
        assert ("m.room.topic", "") not in resolved  # Bob's topic fails against it


def test_ban_beats_the_banned_users_concurrent_change() -> None:
    room = base_room()
    a, b = room.fork(), room.fork()
    ban = a.send(ALICE, "m.room.member", {"membership": "ban"}, CHARLIE, ts=100)
    rename = b.send(CHARLIE, "m.room.member", {"membership": "join", "displayname": "C"},
                    CHARLIE, ts=500)
    assert ban and rename
    resolved = resolve_state([b.state, a.state], room.events, room.version)
    assert resolved[("m.room.member", CHARLIE)] == ban


def test_later_of_two_equal_changes_wins_and_unconflicted_state_stays() -> None:
    room = base_room()
    a, b = room.fork(), room.fork()
    early = a.send(ALICE, "m.room.name", {"name": "5a"}, ts=100)
    late = b.send(ALICE, "m.room.name", {"name": "5a Mathe"}, ts=200)
    resolved = resolve_state([a.state, b.state], room.events, room.version)
    assert early and resolved[("m.room.name", "")] == late
    for key, event_id in room.state.items():
        assert resolved[key] == event_id


def test_one_state_set_is_its_own_resolution() -> None:
    room = base_room()
    assert resolve_state([room.state], room.events, room.version) == room.state


ACTIONS = st.sampled_from([
    (ALICE, "m.room.topic", {"topic": "A"}, ""),
    (BOB, "m.room.topic", {"topic": "B"}, ""),
    (ALICE, "m.room.power_levels", {"users": {ALICE: 100}, "state_default": 50}, ""),
    (ALICE, "m.room.power_levels", {"users": {ALICE: 100, BOB: 100}, "state_default": 50}, ""),
    (BOB, "m.room.power_levels", {"users": {ALICE: 100, BOB: 50, CHARLIE: 50},
                                  "state_default": 50}, ""),
    (ALICE, "m.room.member", {"membership": "ban"}, CHARLIE),
    (BOB, "m.room.member", {"membership": "leave"}, CHARLIE),
    (CHARLIE, "m.room.member", {"membership": "join", "displayname": "C"}, CHARLIE),
    (CHARLIE, "m.room.name", {"name": "C"}, ""),
    (ALICE, "m.room.join_rules", {"join_rule": "invite"}, ""),
])


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(st.lists(st.tuples(ACTIONS, st.integers(0, 5)), max_size=5),
                min_size=2, max_size=3),
       st.sampled_from([V10, V11, V12]))
def test_resolution_does_not_depend_on_the_order_of_the_forks(
        forks: list[list[tuple[tuple[str, str, dict[str, Any], str], int]]],
        version: RoomVersion) -> None:
    room = base_room(version)
    states = []
    for actions in forks:
        fork = room.fork()
        for (sender, event_type, content, state_key), ts_step in actions:
            fork.send(sender, event_type, creators_unlisted(version, content), state_key,
                      ts=fork.ts + ts_step)
        states.append(fork.state)
    results = [resolve_state(list(order), room.events, version)
               for order in itertools.permutations(states)]
    assert all(r == results[0] for r in results)
    # The resolved state is a state: every event in it is at its own key, and the
    # room's create event and its creator's membership are never lost.
    for (event_type, state_key), event_id in results[0].items():
        event = room.events[event_id]
        assert (event["type"], event["state_key"]) == (event_type, state_key)
    assert results[0][("m.room.create", "")] == room.state[("m.room.create", "")]
