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


@lru_cache(maxsize=4096)
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
    return _value(pdu, split_key(key))


@lru_cache(maxsize=4096)
def _glob(pattern: str, words: bool) -> re.Pattern[str]:
    body = "".join(".*?" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    if words:
        return re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE | re.DOTALL)
    return re.compile(rf"{body}\Z", re.IGNORECASE | re.DOTALL)


def glob_matches(pattern: str, value: str, *, words: bool) -> bool:
    """A glob against a whole value, or against whole words of it (``content.body``)."""
    if words:
        # Most bodies do not contain a user's name at all: a substring test says so
        # without the regular expression (every user has their own).
        if "*" not in pattern and "?" not in pattern \
                and pattern.lower() not in value.lower():
            return False
        return _glob(pattern, True).search(value) is not None
    return _glob(pattern, False).match(value) is not None


def _same(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1, 1.0 is not 1."""
    return type(a) is type(b) and a == b


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | bool)


# --- compiled rulesets ------------------------------------------------------------
# A condition compiles to a hashable spec; its result depends on the event only
# (and the display name, for contains_display_name), so one event's ``Matcher``
# works each spec out once for all the users whose rules name it.
Spec = tuple[Any, ...]
NEVER: Spec = ("never",)


@lru_cache(maxsize=16384)
def _interned(spec: Spec) -> Spec:
    """One object per distinct spec: a ``Matcher`` keys its results by identity."""
    return spec


def condition_spec(condition: Any) -> Spec:
    """A condition of spec 13.13.1.1 as a spec; malformed or unknown: ``NEVER``."""
    return _interned(_condition_spec(condition))


def _condition_spec(condition: Any) -> Spec:
    if not isinstance(condition, Mapping):
        return NEVER
    kind = condition.get("kind")
    if kind == "event_match":
        key, pattern = condition.get("key"), condition.get("pattern")
        if isinstance(key, str) and isinstance(pattern, str):
            return ("event_match", split_key(key), pattern, key == "content.body")
        return NEVER
    if kind in ("event_property_is", "event_property_contains"):
        key, wanted = condition.get("key"), condition.get("value", _MISSING)
        if isinstance(key, str) and wanted is not _MISSING and _scalar(wanted):
            return (kind, split_key(key), type(wanted).__name__, wanted)
        return NEVER
    if kind == "contains_display_name":
        return ("contains_display_name",)
    if kind == "room_member_count":
        spec = condition.get("is")
        found = _COUNT.match(spec) if isinstance(spec, str) else None
        return ("room_member_count", found.group(1) or "==", int(found.group(2))) \
            if found is not None else NEVER
    if kind == "sender_notification_permission":
        key = condition.get("key")
        return ("sender_notification_permission", key) if isinstance(key, str) else NEVER
    return NEVER


@dataclass(frozen=True)
class CompiledRule:
    rule_id: str
    conditions: tuple[Spec, ...]
    actions: Actions
    legacy_mention: bool  # skipped when the event carries m.mentions


CompiledRuleset = tuple[CompiledRule, ...]


def compile_ruleset(ruleset: Mapping[str, Any]) -> CompiledRuleset:
    """The enabled rules in evaluation order (spec 13.13.1: override, content,
    room, sender, underride), each with its conditions as specs."""
    scope = ruleset.get("global")
    if not isinstance(scope, Mapping):
        return ()
    out = []
    for kind in KINDS:
        rules = scope.get(kind)
        if not isinstance(rules, Sequence) or isinstance(rules, str):
            continue
        for rule in rules:
            if not isinstance(rule, Mapping) or rule.get("enabled", True) is not True:
                continue
            rule_id = rule.get("rule_id")
            rule_id = rule_id if isinstance(rule_id, str) else ""
            if kind in ("override", "underride"):
                conditions = rule.get("conditions", [])
                specs = tuple(condition_spec(c) for c in conditions) \
                    if isinstance(conditions, list) else (NEVER,)
            elif kind == "content":
                pattern = rule.get("pattern")
                specs = (_interned(("event_match", ("content", "body"), pattern, True)),) \
                    if isinstance(pattern, str) else (NEVER,)
            else:  # room and sender rules: the rule id names the room or the sender
                field_name = "room_id" if kind == "room" else "sender"
                specs = (_interned(("equals", field_name, rule_id)),)
            out.append(CompiledRule(rule_id, specs, actions_of(rule.get("actions")),
                                    rule_id in LEGACY_MENTION_RULES))
    return tuple(out)


def _value(pdu: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = pdu
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


class Matcher:
    """One event's condition results, shared by every user evaluated against it."""

    def __init__(self, facts: EventFacts) -> None:
        self.facts = facts
        self._known: dict[int, bool] = {}  # id of an interned spec -> result
        self._names: dict[str | None, bool] = {}  # display name -> contains it
        self._has_mentions = facts.has_mentions
        body = _value(facts.pdu, ("content", "body"))
        self._lower_body = body.lower() if isinstance(body, str) else ""

    def holds(self, spec: Spec, display_name: str | None) -> bool:
        if spec[0] == "contains_display_name":
            named = self._names.get(display_name)
            if named is None:
                named = self._names[display_name] = self._work_out(
                    ("contains_display_name", display_name))
            return named
        known = self._known.get(id(spec))
        if known is None:
            known = self._known[id(spec)] = self._work_out(spec)
        return known

    def _work_out(self, spec: Spec) -> bool:
        facts, kind = self.facts, spec[0]
        if kind == "event_match":
            value = _value(facts.pdu, spec[1])
            return isinstance(value, str) and glob_matches(spec[2], value, words=spec[3])
        if kind == "event_property_is":
            return _same(_value(facts.pdu, spec[1]), spec[3])
        if kind == "event_property_contains":
            value = _value(facts.pdu, spec[1])
            return isinstance(value, list) and any(_same(item, spec[3]) for item in value)
        if kind == "contains_display_name":
            body = _value(facts.pdu, ("content", "body"))
            name = spec[1]
            return bool(name) and isinstance(body, str) \
                and name.lower() in self._lower_body \
                and re.search(rf"(?<!\w){re.escape(name)}(?!\w)", body,
                              re.IGNORECASE) is not None
        if kind == "room_member_count":
            count, number = facts.member_count, spec[2]
            return {"==": count == number, "<": count < number, ">": count > number,
                    "<=": count <= number, ">=": count >= number}[spec[1]]
        if kind == "sender_notification_permission":
            return facts.sender_power >= facts.notification_levels.get(
                spec[1], DEFAULT_NOTIFICATION_LEVEL)
        if kind == "equals":
            return facts.pdu.get(spec[1]) == spec[2]
        return False

    def evaluate(self, rules: CompiledRuleset, display_name: str | None) -> Actions:
        """The actions of the first rule whose conditions all hold (the hot loop of
        every send: one pass per member, so the common case is a dict lookup)."""
        known, skip_legacy = self._known, self._has_mentions
        for rule in rules:
            if skip_legacy and rule.legacy_mention:
                continue
            for spec in rule.conditions:
                result = known.get(id(spec))
                if result is None:
                    result = self.holds(spec, display_name)
                if not result:
                    break
            else:
                return rule.actions
        return NOTHING


def condition_holds(condition: Any, facts: EventFacts, user_id: str,
                    display_name: str | None) -> bool:
    """One condition of spec 13.13.1.1; a malformed or unknown one does not hold."""
    return Matcher(facts).holds(condition_spec(condition), display_name)


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


def evaluate(ruleset: Mapping[str, Any], facts: EventFacts, user_id: str,
             display_name: str | None) -> Actions:
    """The actions of the first rule that matches, in kind order (spec 13.13.1);
    for many users of one event, compile once and share a ``Matcher``."""
    return Matcher(facts).evaluate(compile_ruleset(ruleset), display_name)


def thread_of(pdu: Mapping[str, Any]) -> str:
    """The thread an event counts in (spec 11.6.2.3): its root's id, or ``main``."""
    relates = lookup(pdu, "content.m\\.relates_to")
    if isinstance(relates, Mapping) and relates.get("rel_type") == "m.thread" \
            and isinstance(relates.get("event_id"), str):
        return relates["event_id"]
    return "main"
