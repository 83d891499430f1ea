"""Push rule evaluation (messenger.push_evaluator) against simple models of the
spec's rules (Client-Server API 13.13.1): globs, whole-word body matching,
exact property comparisons, member counts, and the first-match order of kinds."""

from __future__ import annotations

import fnmatch
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messenger.push_defaults import default_push_rules
from messenger.push_evaluator import (
    KINDS,
    NOTHING,
    Actions,
    EventFacts,
    actions_of,
    condition_holds,
    evaluate,
    glob_matches,
    split_key,
    thread_of,
)

ME = "@anna:schule.test"
ROOM = "!r:schule.test"


def facts(content: dict[str, Any], event_type: str = "m.room.message", members: int = 3,
          sender_power: int = 0, **pdu: Any) -> EventFacts:
    return EventFacts({"type": event_type, "content": content, "sender": "@ben:schule.test",
                       "room_id": ROOM, **pdu}, members, sender_power, {})


# --- globs and words ---------------------------------------------------------------
@given(st.text("ab*?", max_size=6), st.text("abAB.\n", max_size=8))
def test_glob_matches_like_fnmatch_ignoring_case(pattern: str, value: str) -> None:
    assert glob_matches(pattern, value, words=False) == \
        fnmatch.fnmatchcase(value.lower(), pattern.lower())


@given(st.text("abc", min_size=1, max_size=3), st.text("abc .,!", max_size=20))
def test_body_patterns_match_whole_words(word: str, body: str) -> None:
    model = word in re.split(r"\W+", body.lower())
    assert glob_matches(word, body, words=True) == model


def test_escaped_dots_in_keys() -> None:
    assert split_key("content.m\\.mentions.user_ids") == ("content", "m.mentions", "user_ids")
    assert split_key("a\\\\.b") == ("a\\", "b")


@pytest.mark.parametrize(("condition", "expected"), [
    ({"kind": "event_match", "key": "content.body", "pattern": "hallo"}, True),
    ({"kind": "event_match", "key": "content.body", "pattern": "hall"}, False),
    ({"kind": "event_match", "key": "content.count", "pattern": "1"}, False),  # not a string
    ({"kind": "event_property_is", "key": "content.flag", "value": True}, True),
    ({"kind": "event_property_is", "key": "content.count", "value": True}, False),
    ({"kind": "event_property_is", "key": "content.count", "value": 1}, True),
    ({"kind": "event_property_is", "key": "content.none", "value": None}, True),
    ({"kind": "event_property_is", "key": "content.missing", "value": None}, False),
    ({"kind": "event_property_contains", "key": "content.list", "value": "x"}, True),
    ({"kind": "event_property_contains", "key": "content.list", "value": 1}, False),
    ({"kind": "event_property_contains", "key": "content.body", "value": "H"}, False),
    ({"kind": "contains_display_name"}, True),
    ({"kind": "room_member_count", "is": "3"}, True),
    ({"kind": "room_member_count", "is": ">=4"}, False),
    ({"kind": "room_member_count", "is": "<4"}, True),
    ({"kind": "room_member_count", "is": "three"}, False),
    ({"kind": "sender_notification_permission", "key": "room"}, False),
    ({"kind": "org.example.unknown"}, False),
    ("nonsense", False),
])
def test_conditions(condition: Any, expected: bool) -> None:
    event = facts({"body": "Hallo Anna!", "flag": True, "count": 1, "none": None,
                   "list": ["x", True]})
    assert condition_holds(condition, event, ME, "Anna") is expected


def test_actions() -> None:
    assert actions_of(["notify", {"set_tweak": "highlight"}]) == Actions(True, True, None)
    assert actions_of(["notify", {"set_tweak": "highlight", "value": False},
                       {"set_tweak": "sound", "value": "default"}]) == \
        Actions(True, False, "default")
    assert actions_of(["dont_notify", {"set_tweak": "highlight"}]) == NOTHING
    assert actions_of(["coalesce"]) == Actions(True, False, None)
    assert actions_of("notify") == NOTHING


# --- the first matching rule wins, kinds in order -----------------------------------
TYPES = ("m.room.message", "m.room.encrypted", "m.reaction")
conditions = st.one_of(
    st.builds(lambda p: {"kind": "event_match", "key": "type", "pattern": p},
              st.sampled_from(["m.room.*", "m.reaction", "*", "m.room.message", "x"])),
    st.builds(lambda n: {"kind": "room_member_count", "is": f"<={n}"}, st.integers(0, 4)),
    st.builds(lambda v: {"kind": "event_property_is", "key": "content.flag", "value": v},
              st.booleans()),
)
action_lists = st.sampled_from([["notify"], [], ["notify", {"set_tweak": "highlight"}],
                                ["dont_notify"]])


def rule_strategy(kind: str, n: int) -> st.SearchStrategy[dict[str, Any]]:
    base = {"rule_id": f"{kind}{n}", "default": False}
    if kind in ("override", "underride"):
        return st.builds(lambda c, a, e: {**base, "conditions": c, "actions": a, "enabled": e},
                         st.lists(conditions, max_size=2), action_lists, st.booleans())
    if kind == "content":
        return st.builds(lambda p, a, e: {**base, "pattern": p, "actions": a, "enabled": e},
                         st.sampled_from(["hallo", "anna", "x*"]), action_lists, st.booleans())
    target = ROOM if kind == "room" else "@ben:schule.test"
    return st.builds(lambda same, a, e: {**base, "rule_id": target if same else "!other",
                                         "actions": a, "enabled": e},
                     st.booleans(), action_lists, st.booleans())


rulesets = st.fixed_dictionaries({kind: st.lists(rule_strategy(kind, 0), max_size=3)
                                  for kind in KINDS})


def model_condition(condition: dict[str, Any], pdu: dict[str, Any], members: int) -> bool:
    if condition["kind"] == "event_match":
        return fnmatch.fnmatchcase(pdu["type"], condition["pattern"])
    if condition["kind"] == "room_member_count":
        return members <= int(condition["is"][2:])
    value = pdu["content"].get("flag", "absent")
    return isinstance(value, bool) and value == condition["value"]


def model(rules: dict[str, list[dict[str, Any]]], pdu: dict[str, Any], members: int) -> Any:
    words = re.split(r"\W+", pdu["content"].get("body", "").lower())
    for kind in KINDS:
        for rule in rules[kind]:
            if not rule["enabled"]:
                continue
            if kind in ("override", "underride"):
                hit = all(model_condition(c, pdu, members) for c in rule["conditions"])
            elif kind == "content":
                pattern = rule["pattern"]
                hit = any(fnmatch.fnmatchcase(w, pattern) for w in words)
            elif kind == "room":
                hit = rule["rule_id"] == pdu["room_id"]
            else:
                hit = rule["rule_id"] == pdu["sender"]
            if hit:
                actions = rule["actions"]
                notify = "notify" in actions
                return notify, notify and {"set_tweak": "highlight"} in actions
    return False, False


@given(rulesets, st.sampled_from(TYPES), st.sampled_from(["Hallo Anna", "xylo", ""]),
       st.sampled_from([True, False, None]), st.integers(1, 5))
def test_evaluation_is_the_first_matching_rule(rules: dict[str, Any], event_type: str,
                                               body: str, flag: bool | None,
                                               members: int) -> None:
    content: dict[str, Any] = {"body": body}
    if flag is not None:
        content["flag"] = flag
    event = facts(content, event_type, members)
    got = evaluate({"global": rules}, event, ME, None)
    assert (got.notify, got.highlight) == model(rules, dict(event.pdu), members)


# --- the predefined rules ----------------------------------------------------------
def predefined(event: EventFacts, name: str | None = "Anna") -> Actions:
    return evaluate(default_push_rules(ME), event, ME, name)


def test_mentions_highlight_and_m_mentions_turn_off_body_matching() -> None:
    assert predefined(facts({"body": "Anna, kommst du?"})).highlight
    assert predefined(facts({"body": "Hat anna Zeit?"})).highlight  # the login
    assert not predefined(facts({"body": "Annabell kommt"})).highlight
    # With m.mentions the body is not searched (spec v1.7): only the mention counts.
    plain = facts({"body": "Anna, kommst du?", "m.mentions": {}})
    assert predefined(plain) == Actions(True, False, None)
    assert predefined(facts({"body": "x", "m.mentions": {"user_ids": [ME]}})).highlight


def test_room_mentions_need_the_senders_power() -> None:
    for body in ({"body": "@room Achtung"}, {"body": "Achtung", "m.mentions": {"room": True}}):
        assert not predefined(facts(body)).highlight
        assert predefined(facts(body, sender_power=50)).highlight


def test_one_to_one_rooms_sound_and_bigger_rooms_only_notify() -> None:
    assert predefined(facts({"body": "hi"}, members=2)) == Actions(True, False, "default")
    assert predefined(facts({"body": "hi"}, members=3)) == Actions(True, False, None)
    assert predefined(facts({"algorithm": "x"}, "m.room.encrypted", members=2)).sound


def test_tombstones_highlight_and_state_events_stay_silent() -> None:
    assert predefined(facts({"body": "moved"}, "m.room.tombstone", state_key="")).highlight
    assert predefined(facts({"name": "x"}, "m.room.name", state_key="")) == NOTHING


def test_threads() -> None:
    assert thread_of({"content": {"m.relates_to": {"rel_type": "m.thread",
                                                   "event_id": "$root"}}}) == "$root"
    assert thread_of({"content": {"m.relates_to": {"rel_type": "m.replace",
                                                   "event_id": "$x"}}}) == "main"
    assert thread_of({"content": "nonsense"}) == "main"


def test_one_matcher_serves_many_users_with_their_own_names_and_rules() -> None:
    from messenger.push_evaluator import Matcher, compile_ruleset

    event = facts({"body": "Danke, Bea und Carl!"})
    matcher = Matcher(event)
    users = {"@anna:schule.test": "Anna", "@bea:schule.test": "Bea",
             "@carl:schule.test": "Carl", "@dora:schule.test": None}
    got = {u: matcher.evaluate(compile_ruleset(default_push_rules(u)), name).highlight
           for u, name in users.items()}
    assert got == {"@anna:schule.test": False, "@bea:schule.test": True,
                   "@carl:schule.test": True, "@dora:schule.test": False}
