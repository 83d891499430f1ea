"""Checks on received PDUs (Server-Server API "Checks performed on receipt of a
PDU" steps 1 and 4): the event format, and the auth rules against the event's
own auth events, which must be exactly the ones the selection algorithm picks."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from messenger.events.room_versions import V10, V11, V12, RoomVersion
from messenger.rooms.errors import AuthRuleViolation
from messenger.rooms.pdu_checks import (
    MalformedPdu,
    auth_state_of,
    check_against_auth_events,
    check_format,
)
from tests.messenger.rooms.test_auth_rules import ALICE, EVE, OWNER, ROOM, new_room
from tests.support.properties import examples


def _by_id(state: dict[tuple[str, str], Any]) -> dict[str, Any]:
    return {e["event_id"]: e for e in state.values()}


def message(sender: str, auth: list[str]) -> dict[str, Any]:
    return {"room_id": ROOM, "sender": sender, "type": "m.room.message",
            "content": {"body": "hallo"}, "depth": 9, "origin_server_ts": 1,
            "prev_events": ["$p"], "auth_events": auth, "hashes": {"sha256": "x"},
            "signatures": {}}


def _room() -> tuple[dict[tuple[str, str], Any], dict[str, Any]]:
    room = new_room()
    room.member(OWNER, ALICE, "invite")
    room.member(ALICE, ALICE, "join")
    return room.state, _by_id(room.state)


def _ids(state: dict[tuple[str, str], Any], *keys: tuple[str, str]) -> list[str]:
    return [state[k]["event_id"] for k in keys]


CREATE, POWER = ("m.room.create", ""), ("m.room.power_levels", "")


def test_a_member_message_with_the_right_auth_events_passes() -> None:
    state, events = _room()
    pdu = message(ALICE, _ids(state, CREATE, POWER, ("m.room.member", ALICE)))
    check_format(pdu)
    check_against_auth_events(pdu, events, V10)


@pytest.mark.parametrize(("extra", "reason"), [
    ([("m.room.join_rules", "")], "not relevant"),   # superfluous for a message
    ([("m.room.member", OWNER)], "not relevant"),    # another member's event
])
def test_auth_events_beyond_the_selection_are_refused(
        extra: list[tuple[str, str]], reason: str) -> None:
    state, events = _room()
    pdu = message(ALICE, _ids(state, CREATE, POWER, ("m.room.member", ALICE), *extra))
    with pytest.raises(AuthRuleViolation, match=reason):
        check_against_auth_events(pdu, events, V10)


def test_missing_create_unknown_and_foreign_auth_events_are_refused() -> None:
    state, events = _room()
    with pytest.raises(AuthRuleViolation, match="create"):
        auth_state_of(message(ALICE, _ids(state, POWER, ("m.room.member", ALICE))), events)
    with pytest.raises(AuthRuleViolation, match="unknown"):
        auth_state_of(message(ALICE, [*_ids(state, CREATE), "$nirgends"]), events)
    foreign = {**events[state[POWER]["event_id"]], "room_id": "!anders:x.test"}
    with pytest.raises(AuthRuleViolation, match="another room"):
        auth_state_of(message(ALICE, _ids(state, CREATE, POWER)),
                      {**events, foreign["event_id"]: foreign})


def test_a_non_member_cannot_pass_with_its_own_auth_events() -> None:
    state, events = _room()
    with pytest.raises(AuthRuleViolation, match="not in the room"):
        check_against_auth_events(message(EVE, _ids(state, CREATE, POWER)), events, V11)


def test_format_refusals_name_the_field() -> None:
    good = message(ALICE, ["$a"])
    for key, value in [("depth", "tief"), ("depth", -1), ("prev_events", ["$a", "$a"]),
                       ("prev_events", ["nope"]), ("auth_events", ["$x"] * 11),
                       ("sender", "nobody"), ("content", []), ("hashes", {}),
                       ("state_key", 5), ("room_id", "room")]:
        with pytest.raises(MalformedPdu):
            check_format({**good, key: value})
    with pytest.raises(MalformedPdu, match="bytes"):
        check_format({**good, "content": {"body": "x" * 70_000}})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                  max_size=4),
    max_leaves=12)
fields = st.sampled_from(["room_id", "sender", "type", "state_key", "content", "depth",
                          "origin_server_ts", "prev_events", "auth_events", "hashes",
                          "signatures", "event_id"])


v12_room_ids = st.text("ABCDEFabcdef0123456789-_", min_size=43, max_size=43).map(
    lambda h: "!" + h)


@settings(max_examples=examples(400), deadline=None)
@given(st.dictionaries(fields, json_values | v12_room_ids, max_size=12),
       st.sampled_from([None, V10, V12]), st.booleans(), st.none() | v12_room_ids)
def test_check_format_refuses_arbitrary_input_cleanly(
        pdu: dict[str, Any], version: RoomVersion | None, create: bool,
        room_id: str | None) -> None:
    """Whatever arrives, the format check either passes or raises ``MalformedPdu``;
    what passes is safe for the auth checks (they raise only ``AuthRuleViolation``);
    also for room version 12's room ids and create events without one."""
    if create:
        pdu = {**pdu, "type": "m.room.create", "state_key": ""}
    try:
        check_format(pdu, room_id, version)
    except MalformedPdu:
        return
    try:
        check_against_auth_events(pdu, {}, version or V10)
    except AuthRuleViolation:
        pass
