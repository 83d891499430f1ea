"""Push rule evaluation: which actions a user's ruleset gives an event (spec:
Client-Server API 13.13.1 "Push Rules": kinds and their order, 13.13.1.1
"Conditions", 13.13.1.2 "Predefined Rules"; v1.7 intentional mentions).

Pure functions, no I/O: ``EventFacts`` holds what the room says about one event
(its PDU, the joined member count, the sender's power level and the room's
``notifications`` levels), computed once per event; ``evaluate`` runs one
user's ruleset over it.  The unread counts (messenger.unread), the push sender
and /notifications all use this one evaluation.

Matching as the spec says: ``event_match`` globs (``*``, ``?``) match string
values only and case-insensitively, the whole value - except ``content.body``,
where the pattern matches whole words; ``event_property_is`` and
``event_property_contains`` compare exactly (a boolean is not a number);
dotted keys escape a literal dot as ``\\.``.  An unknown condition kind makes
its rule not match.  When an event carries ``m.mentions``, the legacy
body-matching mention rules do not apply (spec v1.7, MSC3952).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

KINDS = ("override", "content", "room", "sender", "underride")
DEFAULT_NOTIFICATION_LEVEL = 50  # spec: m.room.power_levels "notifications.room"
# Rules that find mentions in the body: skipped once the event says whom it mentions.
LEGACY_MENTION_RULES = frozenset({".m.rule.contains_display_name", ".m.rule.contains_user_name",
                                  ".m.rule.roomnotif"})
_COUNT = re.compile(r"^(==|<=|>=|<|>)?([0-9]{1,9})$")
_MISSING = object()


@dataclass(frozen=True)
class Actions:
    """What the first matching rule says: notify (count, push), highlight, sound."""

    notify: bool = False
    highlight: bool = False
    sound: str | None = None


NOTHING = Actions()


@dataclass(frozen=True)
class EventFacts:
    """One event and what the room state before it says, shared by every user."""

    pdu: Mapping[str, Any]
    member_count: int
    sender_power: int
    notification_levels: Mapping[str, int] = field(default_factory=dict)

    @property
    def has_mentions(self) -> bool:
        content = self.pdu.get("content")
        return isinstance(content, Mapping) and "m.mentions" in content


def split_key(key: str) -> tuple[str, ...]:
    """``content.m\\.mentions.user_ids`` -> (content, m.mentions, user_ids)."""
    parts, current, escaped = [], [], False
    for char in key:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return tuple(parts)


def lookup(pdu: Mapping[str, Any], key: str) -> Any:
    """The value at a dotted key, or ``_MISSING``."""
    value: Any = pdu
    for part in split_key(key):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


@lru_cache(maxsize=4096)
def _glob(pattern: str, words: bool) -> re.Pattern[str]:
    body = "".join(".*?" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    if words:
        return re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE | re.DOTALL)
    return re.compile(rf"{body}\Z", re.IGNORECASE | re.DOTALL)


def glob_matches(pattern: str, value: str, *, words: bool) -> bool:
    """A glob against a whole value, or against whole words of it (``content.body``)."""
    if words:
        return _glob(pattern, True).search(value) is not None
    return _glob(pattern, False).match(value) is not None


def _same(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1, 1.0 is not 1."""
    return type(a) is type(b) and a == b


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | bool)


def condition_holds(condition: Any, facts: EventFacts, user_id: str,
                    display_name: str | None) -> bool:
    """One condition of spec 13.13.1.1; a malformed or unknown one does not hold."""
    if not isinstance(condition, Mapping):
        return False
    kind = condition.get("kind")
    if kind == "event_match":
        key, pattern = condition.get("key"), condition.get("pattern")
        if not isinstance(key, str) or not isinstance(pattern, str):
            return False
        value = lookup(facts.pdu, key)
        return isinstance(value, str) and glob_matches(pattern, value,
                                                       words=key == "content.body")
    if kind in ("event_property_is", "event_property_contains"):
        key, wanted = condition.get("key"), condition.get("value", _MISSING)
        if not isinstance(key, str) or wanted is _MISSING or not _scalar(wanted):
            return False
        value = lookup(facts.pdu, key)
        if kind == "event_property_is":
            return _same(value, wanted)
        return isinstance(value, list) and any(_same(item, wanted) for item in value)
    if kind == "contains_display_name":
        body = lookup(facts.pdu, "content.body")
        if not display_name or not isinstance(body, str):
            return False
        return re.search(rf"(?<!\w){re.escape(display_name)}(?!\w)", body,
                         re.IGNORECASE) is not None
    if kind == "room_member_count":
        spec = condition.get("is")
        found = _COUNT.match(spec) if isinstance(spec, str) else None
        if found is None:
            return False
        op, number = found.group(1) or "==", int(found.group(2))
        count = facts.member_count
        return {"==": count == number, "<": count < number, ">": count > number,
                "<=": count <= number, ">=": count >= number}[op]
    if kind == "sender_notification_permission":
        key = condition.get("key")
        if not isinstance(key, str):
            return False
        return facts.sender_power >= facts.notification_levels.get(
            key, DEFAULT_NOTIFICATION_LEVEL)
    return False


def actions_of(actions: Any) -> Actions:
    """A rule's actions (spec 13.13.1 "Actions"); ``coalesce`` counts as notify,
    ``dont_notify`` and unknown strings as nothing."""
    if not isinstance(actions, list):
        return NOTHING
    notify, highlight, sound = False, False, None
    for action in actions:
        if action in ("notify", "coalesce"):
            notify = True
        elif isinstance(action, Mapping):
            tweak = action.get("set_tweak")
            if tweak == "highlight":
                highlight = action.get("value", True) is True
            elif tweak == "sound" and isinstance(action.get("value"), str):
                sound = action["value"]
    # A highlight without notify is nothing to count or push (spec: highlight_count
    # counts unread *notifications* with the highlight flag).
    return Actions(notify, highlight and notify, sound if notify else None)


def rule_matches(kind: str, rule: Mapping[str, Any], facts: EventFacts, user_id: str,
                 display_name: str | None) -> bool:
    if rule.get("enabled", True) is not True:
        return False
    rule_id = rule.get("rule_id")
    if rule_id in LEGACY_MENTION_RULES and facts.has_mentions:
        return False
    if kind in ("override", "underride"):
        conditions = rule.get("conditions", [])
        return isinstance(conditions, list) and all(
            condition_holds(c, facts, user_id, display_name) for c in conditions)
    if kind == "content":
        pattern, body = rule.get("pattern"), lookup(facts.pdu, "content.body")
        return isinstance(pattern, str) and isinstance(body, str) and \
            glob_matches(pattern, body, words=True)
    if kind == "room":
        return rule_id == facts.pdu.get("room_id")
    if kind == "sender":
        return rule_id == facts.pdu.get("sender")
    return False


def evaluate(ruleset: Mapping[str, Any], facts: EventFacts, user_id: str,
             display_name: str | None) -> Actions:
    """The actions of the first rule that matches, in kind order (spec 13.13.1)."""
    scope = ruleset.get("global")
    if not isinstance(scope, Mapping):
        return NOTHING
    for kind in KINDS:
        rules = scope.get(kind)
        if not isinstance(rules, Sequence) or isinstance(rules, str):
            continue
        for rule in rules:
            if isinstance(rule, Mapping) and rule_matches(kind, rule, facts, user_id,
                                                          display_name):
                return actions_of(rule.get("actions"))
    return NOTHING


def thread_of(pdu: Mapping[str, Any]) -> str:
    """The thread an event counts in (spec 11.6.2.3): its root's id, or ``main``."""
    relates = lookup(pdu, "content.m\\.relates_to")
    if isinstance(relates, Mapping) and relates.get("rel_type") == "m.thread" \
            and isinstance(relates.get("event_id"), str):
        return relates["event_id"]
    return "main"
