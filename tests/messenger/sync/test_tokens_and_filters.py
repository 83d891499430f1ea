"""Sync/pagination tokens and sync filters: round trips, and no crash on any input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messenger.rooms.errors import InvalidRequest
from messenger.sync.filters import parse_filter
from messenger.sync.tokens import InvalidToken, SyncToken, parse_position, room_token

positions = st.integers(0, 10**17)


@given(positions, positions, st.lists(positions, min_size=4, max_size=4))
def test_sync_token_round_trip(events: int, account_data: int, more: list[int]) -> None:
    token = SyncToken(events, account_data, *more)
    assert SyncToken.parse(str(token)) == token
    assert parse_position(str(token)) == events


def test_two_number_tokens_of_the_first_slice_still_parse() -> None:
    assert SyncToken.parse("s5_7") == SyncToken(5, 7, 0, 0, 0, 0)


@given(positions)
def test_room_token_round_trip(position: int) -> None:
    assert parse_position(room_token(position)) == position


@given(st.integers(min_value=-(2 ** 62), max_value=0))
def test_room_tokens_of_backfilled_history_round_trip(position: int) -> None:
    # History fetched from other servers lies at zero and below (rooms.backfill).
    assert parse_position(room_token(position)) == position


@given(st.text(max_size=40))
def test_parsers_only_raise_invalid_token(text: str) -> None:
    try:
        parse_position(text)
    except InvalidToken:
        pass
    try:
        SyncToken.parse(text)
    except InvalidToken:
        pass


@pytest.mark.parametrize("bad", ["", "s1", "s1_", "t-", "t--1", "s1_2_3", "s1_2_3_4_5_6_7", "t1x",
                                 "s" + "9" * 30 + "_1"])
def test_bad_tokens(bad: str) -> None:
    with pytest.raises(InvalidToken):
        parse_position(bad)


def test_filter_fields() -> None:
    f = parse_filter({"room": {"timeline": {"limit": 3, "not_types": ["m.room.member"]},
                               "rooms": ["!a:s"], "include_leave": True}})
    assert f.timeline_limit == 3 and f.include_leave
    assert f.wants_room("!a:s") and not f.wants_room("!b:s")
    assert f.wants_type("m.room.message") and not f.wants_type("m.room.member")
    assert parse_filter({}).timeline_limit is None
    wild = parse_filter({"room": {"timeline": {"types": ["m.room.*"]}}})
    assert wild.wants_type("m.room.message") and not wild.wants_type("m.reaction")


json_like = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                         lambda c: st.lists(c, max_size=3)
                         | st.dictionaries(st.text(max_size=8), c, max_size=3), max_leaves=10)


@given(st.dictionaries(st.sampled_from(["room", "presence", "account_data"]), json_like,
                       max_size=3))
def test_filter_parser_never_crashes(definition: dict[str, object]) -> None:
    try:
        parse_filter(definition)
    except InvalidRequest:
        pass


@given(json_like)
def test_filter_room_parser_never_crashes(room: object) -> None:
    try:
        parse_filter({"room": {"timeline": room, "rooms": room}})
    except InvalidRequest:
        pass
