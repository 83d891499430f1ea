"""Messenger rights and quiet hours as tables: roles x switches x actions (the school's
defaults, group grants, the wider right of several), and quiet-hour windows x times x
personal overrides; hypothesis for the window arithmetic."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from directory.model import Role
from messenger.chat_rights import ChatAction, ChatRights
from messenger.quiet_hours import (
    QuietRules,
    QuietWindow,
    parse_clock,
    parse_role_windows,
    personal_window,
)

CREATE, DIRECT = ChatAction.CREATE_ROOM, ChatAction.START_DIRECT
DEFAULTS = ChatRights()

# role, groups, action -> allowed (defaults: pupils no rooms, parents only answer).
RIGHTS_TABLE = [
    (Role.PUPIL, (), CREATE, False), (Role.PUPIL, (), DIRECT, True),
    (Role.PARENT, (), CREATE, False), (Role.PARENT, (), DIRECT, False),
    (Role.TEACHER, (), CREATE, True), (Role.TEACHER, (), DIRECT, True),
    (Role.STAFF, (), CREATE, True), (Role.STAFF, (), DIRECT, True),
    (Role.ADMIN, (), CREATE, True), (Role.ADMIN, (), DIRECT, True),
]


@pytest.mark.parametrize(("role", "groups", "action", "allowed"), RIGHTS_TABLE)
def test_default_rights(role: Role, groups: tuple[str, ...], action: ChatAction,
                        allowed: bool) -> None:
    assert DEFAULTS.allows(action, role, groups) is allowed


# A school that lets the pupils' council open rooms and the parents' council write first.
GRANTS = ChatRights(create_rooms_groups=frozenset({"sv"}),
                    start_direct_groups=frozenset({"elternbeirat"}))


@pytest.mark.parametrize(("role", "groups", "action", "allowed"), [
    (Role.PUPIL, ("sv",), CREATE, True), (Role.PUPIL, ("5a",), CREATE, False),
    (Role.PUPIL, ("5a", "sv"), CREATE, True),  # the widest right of all its groups
    (Role.PARENT, ("elternbeirat",), DIRECT, True), (Role.PARENT, ("elternbeirat",), CREATE,
                                                     False),
    (Role.PARENT, ("sv",), DIRECT, False), (Role.TEACHER, (), CREATE, True),
])
def test_group_grants(role: Role, groups: tuple[str, ...], action: ChatAction,
                      allowed: bool) -> None:
    assert GRANTS.allows(action, role, groups) is allowed


def test_everyone_allows_all() -> None:
    assert all(ChatRights.everyone().allows(a, r) for a in ChatAction for r in Role)


BERLIN = dt.timezone(dt.timedelta(hours=1))  # December: CET
NIGHT = QuietWindow.parse("20:00-07:00")
RULES = QuietRules(NIGHT, "Europe/Berlin",
                   parse_role_windows(["teacher=off", "parent=19:00-08:00"], True))


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    """December 2026: the 7th is a Monday, the 12th a Saturday."""
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=BERLIN)


@pytest.mark.parametrize(("role", "when", "personal", "quiet"), [
    (Role.PUPIL, at(7, 12), None, False), (Role.PUPIL, at(7, 20), None, True),
    (Role.PUPIL, at(7, 19, 59), None, False), (Role.PUPIL, at(8, 6, 59), None, True),
    (Role.PUPIL, at(8, 7), None, False), (Role.PUPIL, at(12, 12), None, True),  # Saturday
    (Role.TEACHER, at(7, 23), None, False), (Role.TEACHER, at(12, 12), None, False),
    (Role.PARENT, at(7, 19, 30), None, True), (Role.PARENT, at(8, 7, 30), None, True),
    (Role.PARENT, at(8, 8), None, False),
    (Role.PUPIL, at(7, 22), {"enabled": False}, False),  # the person switched them off
    (Role.TEACHER, at(7, 22), {"start": "21:00", "end": "06:00"}, True),  # and on
    (Role.PUPIL, at(12, 12), {"start": "21:00", "end": "06:00", "weekends": False}, False),
    (Role.PUPIL, at(7, 22), {"start": "25:00", "end": "x"}, True),  # nonsense: inherit
    (Role.PUPIL, at(7, 22), {"enabled": True}, True),
])
def test_quiet_hours_table(role: Role, when: dt.datetime, personal: dict[str, object] | None,
                           quiet: bool) -> None:
    assert RULES.is_quiet(role, when.astimezone(dt.UTC), personal) is quiet


def test_bad_settings_are_refused() -> None:
    for text in ("20-07", "20:00", "24:00-07:00", "20:00-7:60"):
        with pytest.raises(ValueError):
            QuietWindow.parse(text)
    with pytest.raises(ValueError, match="unknown role"):
        parse_role_windows(["hausmeister=off"], True)
    with pytest.raises(ValueError):
        parse_role_windows(["teacher"], True)
    with pytest.raises(KeyError):
        QuietRules(NIGHT, "Mars/Olympus")


clocks = st.builds(dt.time, st.integers(0, 23), st.integers(0, 59))
moments = st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 1, 1))


@given(start=clocks, end=clocks, moment=moments)
def test_a_window_and_its_complement_split_every_weekday_minute(
        start: dt.time, end: dt.time, moment: dt.datetime) -> None:
    """Quiet from start to end and quiet from end to start never both hold on a
    weekday, and one of them always does unless the window is empty."""
    if moment.weekday() >= 5:
        moment -= dt.timedelta(days=2)
    window, complement = QuietWindow(start, end, False), QuietWindow(end, start, False)
    both = window.covers(moment) and complement.covers(moment)
    either = window.covers(moment) or complement.covers(moment)
    assert not both
    assert either is (start != end)


@given(st.text(max_size=12))
def test_parsing_never_crashes(text: str) -> None:
    for parse in (parse_clock, QuietWindow.parse):
        try:
            parse(text)
        except ValueError:
            pass
    personal_window({"start": text, "end": text, "weekends": text})
