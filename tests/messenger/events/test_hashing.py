"""Content hashes, reference hashes, event ids and redaction (room versions 10, 11)."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messenger.events.hashing import add_hashes, content_hash, event_id_for
from messenger.events.redaction import redact
from messenger.events.room_versions import V10, V11, RoomVersion

VERSIONS = [V10, V11]


def test_content_hash_matches_the_spec_vector() -> None:
    # Spec, Server-Server API "Signing events" example.
    event = {"auth_events": [], "content": {}, "depth": 3, "origin": "domain",
             "origin_server_ts": 1000000, "prev_events": [], "room_id": "!x:domain",
             "sender": "@a:domain", "type": "X", "unsigned": {"age_ts": 1000000},
             "signatures": {"domain": {"ed25519:1": "sig"}}}
    assert content_hash(event) == "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"


def message(**changes: Any) -> dict[str, Any]:
    event = {"room_id": "!room:schule.test", "sender": "@a:schule.test",
             "type": "m.room.message", "content": {"msgtype": "m.text", "body": "hallo"},
             "origin_server_ts": 1700000000000, "depth": 5,
             "prev_events": ["$prev"], "auth_events": ["$create", "$pl", "$member"]}
    event.update(changes)
    return add_hashes(event)


@pytest.mark.parametrize("version", VERSIONS)
def test_event_id_format(version: RoomVersion) -> None:
    event_id = event_id_for(message(), version)
    assert event_id.startswith("$") and len(event_id) == 44
    assert "=" not in event_id and "+" not in event_id and "/" not in event_id
    assert len(base64.urlsafe_b64decode(event_id[1:] + "=")) == 32


covered_changes = st.sampled_from([
    ("room_id", "!other:schule.test"), ("sender", "@b:schule.test"), ("type", "m.custom"),
    ("origin_server_ts", 1), ("depth", 6), ("prev_events", ["$other"]),
    ("auth_events", []), ("state_key", ""),
])


@given(covered_changes, st.sampled_from(VERSIONS))
def test_event_id_changes_with_every_covered_field(change: tuple[str, Any],
                                                   version: RoomVersion) -> None:
    key, value = change
    assert event_id_for(message(**{key: value}), version) != event_id_for(message(), version)


@given(st.text(max_size=30), st.sampled_from(VERSIONS))
def test_content_is_covered_through_the_hash(body: str, version: RoomVersion) -> None:
    original = message()
    changed = message(content={"msgtype": "m.text", "body": body})
    same = body == "hallo"
    assert (event_id_for(changed, version) == event_id_for(original, version)) == same
    # A forged content with the old hashes: the content hash no longer matches.
    forged = {**original, "content": {"msgtype": "m.text", "body": body + "!"}}
    assert content_hash(forged) != original["hashes"]["sha256"]


@given(st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
       st.sampled_from(VERSIONS))
def test_event_id_ignores_unsigned_and_signatures(extra: dict[str, int],
                                                  version: RoomVersion) -> None:
    base = message()
    decorated = {**base, "unsigned": extra, "signatures": {"schule.test": {"ed25519:a": "x"}}}
    assert event_id_for(decorated, version) == event_id_for(base, version)


@pytest.mark.parametrize("version", VERSIONS)
def test_redaction_keeps_the_event_id(version: RoomVersion) -> None:
    event = message()
    redacted = redact(event, version)
    assert redacted["content"] == {}
    assert event_id_for(redacted, version) == event_id_for(event, version)
    assert redact(redacted, version) == redacted


def test_redaction_rules_differ_between_v10_and_v11() -> None:
    create = {"type": "m.room.create", "room_id": "!r:s", "sender": "@a:s", "state_key": "",
              "origin": "s", "membership": "join",
              "content": {"creator": "@a:s", "room_version": "10", "m.federate": True}}
    assert redact(create, V10)["content"] == {"creator": "@a:s"}
    assert "origin" in redact(create, V10) and "membership" in redact(create, V10)
    assert redact(create, V11)["content"] == create["content"]
    assert "origin" not in redact(create, V11) and "membership" not in redact(create, V11)

    power = {"type": "m.room.power_levels", "state_key": "", "content": {
        "ban": 50, "invite": 0, "users": {"@a:s": 100}, "notifications": {"room": 50}}}
    assert redact(power, V10)["content"] == {"ban": 50, "users": {"@a:s": 100}}
    assert redact(power, V11)["content"] == {"ban": 50, "invite": 0, "users": {"@a:s": 100}}

    redaction = {"type": "m.room.redaction", "redacts": "$x",
                 "content": {"redacts": "$x", "reason": "spam"}}
    assert redact(redaction, V10)["content"] == {}
    assert redact(redaction, V11)["content"] == {"redacts": "$x"}

    member = {"type": "m.room.member", "state_key": "@b:s", "content": {
        "membership": "join", "displayname": "B", "join_authorised_via_users_server": "@a:s",
        "third_party_invite": {"display_name": "b", "signed": {"token": "t"}}}}
    assert redact(member, V10)["content"] == {
        "membership": "join", "join_authorised_via_users_server": "@a:s"}
    assert redact(member, V11)["content"] == {
        "membership": "join", "join_authorised_via_users_server": "@a:s",
        "third_party_invite": {"signed": {"token": "t"}}}


@given(st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=5),
       st.sampled_from(["m.room.message", "m.room.member", "m.room.create",
                        "m.room.join_rules", "m.room.power_levels", "x.custom"]),
       st.sampled_from(VERSIONS))
def test_redaction_never_adds_and_does_not_touch_input(content: dict[str, str],
                                                       event_type: str,
                                                       version: RoomVersion) -> None:
    event = {"type": event_type, "content": content, "unsigned": {"age": 1},
             "sender": "@a:s", "random_key": 1}
    before = copy.deepcopy(event)
    out = redact(event, version)
    assert event == before
    assert set(out) <= set(event)
    assert set(out["content"]) <= set(content)
    assert "unsigned" not in out and "random_key" not in out
