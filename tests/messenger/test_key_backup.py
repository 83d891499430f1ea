"""Key backup parsing and the replacement rule (spec "Server-side key backups"):
parsers fail only with KeyBackupError, valid bodies parse back, and a key replaces
the stored one exactly when it ranks better (verified, then lower
first_message_index, then lower forwarded_count)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messenger.key_backup import (
    KeyBackupError,
    MalformedField,
    MissingField,
    SessionKey,
    parse_backup_config,
    parse_backup_keys,
    parse_session_key,
    parse_version,
)

any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20)
ids = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)
counts = st.integers(0, 2**53 - 1)
session_keys = st.builds(SessionKey, counts, counts, st.booleans(),
                         st.dictionaries(ids, ids, max_size=3))


@given(st.dictionaries(st.sampled_from(["rooms", "sessions", "first_message_index",
                                        "forwarded_count", "is_verified", "session_data",
                                        "algorithm", "auth_data"]) | st.text(),
                       any_json, max_size=6), st.none() | st.text(), st.none() | st.text())
def test_parsers_fail_only_with_backup_errors(body: dict[str, Any], room: str | None,
                                              session: str | None) -> None:
    for parse in (lambda: parse_backup_keys(body, room, session),
                  lambda: parse_backup_config(body), lambda: parse_session_key(body)):
        try:
            parse()
        except KeyBackupError:
            pass


@given(st.dictionaries(ids, st.dictionaries(ids, session_keys, max_size=3), max_size=3))
def test_all_three_granularities_parse_back(rooms: dict[str, dict[str, SessionKey]]) -> None:
    expected = {(r, s): k for r, sessions in rooms.items() for s, k in sessions.items()}
    body = {"rooms": {r: {"sessions": {s: k.to_json() for s, k in sessions.items()}}
                      for r, sessions in rooms.items()}}
    assert parse_backup_keys(body) == expected
    for room, sessions in rooms.items():
        assert parse_backup_keys(body["rooms"][room], room) == {
            (room, s): k for s, k in sessions.items()}
        for session, key in sessions.items():
            assert parse_backup_keys(key.to_json(), room, session) == {(room, session): key}


@pytest.mark.parametrize(("body", "error"), [
    ({"forwarded_count": 0, "is_verified": False, "session_data": {}}, MissingField),
    ({"first_message_index": True, "forwarded_count": 0, "is_verified": False,
      "session_data": {}}, MalformedField),
    ({"first_message_index": -1, "forwarded_count": 0, "is_verified": False,
      "session_data": {}}, MalformedField),
    ({"first_message_index": 0, "forwarded_count": 0, "is_verified": 1,
      "session_data": {}}, MalformedField),
    ({"first_message_index": 0, "forwarded_count": 0, "is_verified": False,
      "session_data": {"x": 0.5}}, MalformedField),
])
def test_malformed_session_keys(body: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_session_key(body)


def test_ids_are_bounded() -> None:
    key = {"first_message_index": 0, "forwarded_count": 0, "is_verified": False,
           "session_data": {}}
    with pytest.raises(MalformedField):
        parse_backup_keys(key, "!r:x", "s" * 256)
    with pytest.raises(MalformedField):
        parse_backup_keys({"sessions": {"": key}}, "!r:x")


@given(st.integers(1, 10**17))
def test_versions_round_trip(number: int) -> None:
    assert parse_version(str(number)) == number


@pytest.mark.parametrize("text", ["", "01", "+1", "1_0", " 1", "1.0", "١", "x",
                                  "9" * 19])
def test_foreign_version_ids_are_unknown(text: str) -> None:
    assert parse_version(text) is None


def rank(key: SessionKey) -> tuple[bool, int, int]:
    return (not key.is_verified, key.first_message_index, key.forwarded_count)


@given(session_keys, session_keys)
def test_a_key_replaces_the_stored_one_only_when_it_ranks_better(new: SessionKey,
                                                                 stored: SessionKey) -> None:
    assert new.replaces(stored) == (rank(new) < rank(stored))
    assert not (new.replaces(stored) and stored.replaces(new))
