"""Push-rule edits (spec "Push Rules: API") as pure functions on a ruleset."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messenger.push_defaults import default_push_rules
from messenger.push_ruleset import (
    KINDS,
    MissingParam,
    PushRuleError,
    RuleNotFound,
    delete_rule,
    find_rule,
    put_rule,
    ruleset_of,
    set_attribute,
)

USER = "@anna:schule.test"
ROOM = "!klasse5a:schule.test"
MUTE = {"actions": [], "conditions": [{"kind": "event_match", "key": "room_id",
                                       "pattern": ROOM}]}


def defaults() -> dict[str, Any]:
    return default_push_rules(USER)


def ids(ruleset: dict[str, Any], kind: str) -> list[str]:
    return [r["rule_id"] for r in ruleset["global"][kind]]


def test_a_user_rule_goes_after_master_and_before_the_predefined_ones() -> None:
    rules = put_rule(defaults(), "global", "override", ROOM, MUTE)
    assert ids(rules, "override")[:3] == [".m.rule.master", ROOM, ".m.rule.suppress_notices"]
    added = find_rule(rules, "global", "override", ROOM)
    assert added == {"rule_id": ROOM, "default": False, "enabled": True, "actions": [],
                     "conditions": MUTE["conditions"]}
    assert ids(defaults(), "override") == ids(delete_rule(rules, "global", "override", ROOM),
                                              "override")


def test_before_and_after_place_among_user_rules() -> None:
    rules = defaults()
    for rule_id in ("a", "b"):
        rules = put_rule(rules, "global", "room", rule_id, {"actions": []})
    assert ids(rules, "room") == ["b", "a"]
    rules = put_rule(rules, "global", "room", "c", {"actions": []}, after="a")
    rules = put_rule(rules, "global", "room", "d", {"actions": []}, before="b")
    assert ids(rules, "room") == ["d", "b", "a", "c"]
    with pytest.raises(RuleNotFound):
        put_rule(rules, "global", "override", "x", MUTE, before=".m.rule.master")


def test_replacing_keeps_the_place_and_the_enabled_switch() -> None:
    rules = put_rule(defaults(), "global", "room", "a", {"actions": []})
    rules = put_rule(rules, "global", "room", "b", {"actions": []})
    rules = set_attribute(rules, "global", "room", "a", "enabled", {"enabled": False})
    rules = put_rule(rules, "global", "room", "a", {"actions": ["notify"]})
    assert ids(rules, "room") == ["b", "a"]
    assert find_rule(rules, "global", "room", "a")["enabled"] is False
    assert find_rule(rules, "global", "room", "a")["actions"] == ["notify"]


def test_predefined_rules_can_be_switched_but_not_made_or_deleted() -> None:
    rules = set_attribute(defaults(), "global", "override", ".m.rule.master", "enabled",
                          {"enabled": True})
    assert find_rule(rules, "global", "override", ".m.rule.master")["enabled"] is True
    rules = set_attribute(rules, "global", "underride", ".m.rule.message", "actions",
                          {"actions": ["dont_notify"]})
    assert find_rule(rules, "global", "underride", ".m.rule.message")["actions"] == [
        "dont_notify"]
    with pytest.raises(PushRuleError):
        put_rule(rules, "global", "override", ".m.rule.mine", MUTE)
    with pytest.raises(PushRuleError):
        delete_rule(rules, "global", "override", ".m.rule.master")


@pytest.mark.parametrize(("kind", "rule_id", "body", "error"), [
    ("override", ROOM, {}, MissingParam),
    ("override", ROOM, {"actions": "notify"}, PushRuleError),
    ("override", ROOM, {"actions": [], "conditions": "x"}, PushRuleError),
    ("content", "kw", {"actions": []}, MissingParam),
    ("content", "kw", {"actions": [], "pattern": ""}, PushRuleError),
    ("nonsense", "x", {"actions": []}, RuleNotFound),
    ("room", "a/b", {"actions": []}, PushRuleError),
    ("room", "", {"actions": []}, PushRuleError),
    ("room", "x", [], PushRuleError),
])
def test_bad_edits_are_refused(kind: str, rule_id: str, body: Any,
                               error: type[Exception]) -> None:
    with pytest.raises(error):
        put_rule(defaults(), "global", kind, rule_id, body)


def test_unknown_scope_and_rule() -> None:
    with pytest.raises(RuleNotFound):
        find_rule(defaults(), "device", "override", ".m.rule.master")
    with pytest.raises(RuleNotFound):
        set_attribute(defaults(), "global", "room", "nope", "enabled", {"enabled": True})
    with pytest.raises(MissingParam):
        set_attribute(defaults(), "global", "override", ".m.rule.master", "enabled", {})


@given(st.one_of(st.none(), st.integers(), st.text(), st.dictionaries(st.text(), st.text())))
def test_a_malformed_stored_ruleset_falls_back_to_the_defaults(stored: Any) -> None:
    assert ruleset_of(stored, defaults()) == defaults()


@given(st.lists(st.tuples(st.sampled_from(KINDS[2:4]), st.sampled_from("abcde"),
                          st.booleans()), max_size=15))
def test_edits_never_touch_the_predefined_rules_or_the_input(
        edits: list[tuple[str, str, bool]]) -> None:
    """A model: the user rules of a kind are exactly those put and not deleted."""
    start = defaults()
    rules, model = start, {kind: set() for kind in KINDS}
    for kind, rule_id, add in edits:
        if add:
            rules = put_rule(rules, "global", kind, rule_id, {"actions": []})
            model[kind].add(rule_id)
        elif rule_id in model[kind]:
            rules = delete_rule(rules, "global", kind, rule_id)
            model[kind].discard(rule_id)
    assert start == defaults()
    for kind in KINDS:
        user = {r["rule_id"] for r in rules["global"][kind] if not r["default"]}
        assert user == model[kind]
        assert [r for r in rules["global"][kind] if r["default"]] == defaults()["global"][kind]
