"""Which events notify whom under the predefined rules and muted rooms
(messenger.push_evaluator, as messenger.unread and the push sender use it), and
the gateway's body (messenger.push), without a network."""

from __future__ import annotations

from typing import Any

import pytest

from messenger.push import notification
from messenger.push_defaults import default_push_rules
from messenger.push_evaluator import EventFacts, evaluate
from messenger.push_ruleset import effective_ruleset
from messenger.storage.events import StoredEvent
from messenger.storage.pushers import Pusher

ROOM = "!r:schule.test"
ME = "@b:schule.test"


def event(event_type: str, content: dict[str, Any], sender: str = "@a:schule.test",
          state_key: str | None = None) -> StoredEvent:
    pdu: dict[str, Any] = {"type": event_type, "content": content, "sender": sender,
                           "room_id": ROOM, "event_id": "$e"}
    if state_key is not None:
        pdu["state_key"] = state_key
    return StoredEvent("$e", 1, ROOM, pdu)


def notifies(stored: StoredEvent, rules: Any = None, members: int = 3) -> bool:
    ruleset = effective_ruleset(rules, default_push_rules(ME))
    return evaluate(ruleset, EventFacts(stored.pdu, members, 0), ME, "Bea").notify


@pytest.mark.parametrize(("stored", "expected"), [
    (event("m.room.message", {"msgtype": "m.text", "body": "hi"}), True),
    (event("m.room.encrypted", {"algorithm": "m.megolm.v1.aes-sha2"}), True),
    (event("m.room.message", {"msgtype": "m.notice", "body": "bot"}), False),
    (event("m.room.member", {"membership": "invite"}, state_key=ME), True),
    (event("m.room.member", {"membership": "join"}, state_key="@a:schule.test"), False),
    (event("m.room.member", {"membership": "invite"}, state_key="@c:schule.test"), False),
    (event("m.reaction", {}), False),
    (event("m.room.name", {"name": "x"}, state_key=""), False),
    (event("m.room.message", {"msgtype": "m.text", "body": "* hi", "m.relates_to": {
        "rel_type": "m.replace", "event_id": "$x"}}), False),
])
def test_predefined_rules_notify(stored: StoredEvent, expected: bool) -> None:
    assert notifies(stored) is expected


def mute_rule(room: str, actions: list[Any], **extra: Any) -> dict[str, Any]:
    return {"rule_id": room, "actions": actions, **extra,
            "conditions": [{"kind": "event_match", "key": "room_id", "pattern": room}]}


def with_override(*rules: dict[str, Any]) -> dict[str, Any]:
    ruleset = default_push_rules(ME)
    ruleset["global"]["override"][1:1] = list(rules)
    return ruleset


@pytest.mark.parametrize(("rules", "expected"), [
    (None, True),
    (with_override(mute_rule(ROOM, ["dont_notify"])), False),
    (with_override(mute_rule(ROOM, [])), False),
    (with_override(mute_rule("!other:schule.test", [])), True),
    (with_override(mute_rule(ROOM, ["notify"])), True),
    (with_override(mute_rule(ROOM, [], enabled=False)), True),
    ({"global": {"override": "nonsense"}}, True),  # malformed: the predefined rules
    # Written whole through the account data API, without the predefined rules.
    ({"global": {"override": [mute_rule(ROOM, [])]}}, False),
    ({"global": {"override": [mute_rule("!other:schule.test", [])]}}, True),
])
def test_muted_rooms(rules: Any, expected: bool) -> None:
    assert notifies(event("m.room.message", {"msgtype": "m.text", "body": "hi"}),
                    rules) is expected


def test_master_rule_silences_everything() -> None:
    ruleset = default_push_rules(ME)
    ruleset["global"]["override"][0]["enabled"] = True
    assert not notifies(event("m.room.message", {"msgtype": "m.text", "body": "hi"}), ruleset)


def test_notification_has_no_content_sender_or_url() -> None:
    pusher = Pusher(1, "@b:schule.test", "app", "pk", "http", "App", "Phone", None, "de",
                    {"url": "https://gw.example/_matrix/push/v1/notify", "x": 1}, 1700000000)
    body = notification(event("m.room.message", {"body": "geheim"}), pusher)
    assert body == {"notification": {
        "event_id": "$e", "room_id": ROOM, "counts": {"unread": 1}, "prio": "high",
        "devices": [{"app_id": "app", "pushkey": "pk", "pushkey_ts": 1700000000,
                     "data": {"x": 1}}]}}
