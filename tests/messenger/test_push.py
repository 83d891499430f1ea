"""Which events push and which rooms are muted (messenger.push), without a network."""

from __future__ import annotations

from typing import Any

import pytest

from messenger.push import is_muted, notification, wants_push
from messenger.storage.events import StoredEvent
from messenger.storage.pushers import Pusher

ROOM = "!r:schule.test"


def event(event_type: str, content: dict[str, Any], sender: str = "@a:schule.test",
          state_key: str | None = None) -> StoredEvent:
    pdu: dict[str, Any] = {"type": event_type, "content": content, "sender": sender,
                           "room_id": ROOM, "event_id": "$e"}
    if state_key is not None:
        pdu["state_key"] = state_key
    return StoredEvent("$e", 1, ROOM, pdu)


@pytest.mark.parametrize(("stored", "expected"), [
    (event("m.room.message", {"msgtype": "m.text", "body": "hi"}), True),
    (event("m.room.encrypted", {"algorithm": "m.megolm.v1.aes-sha2"}), True),
    (event("m.room.message", {"msgtype": "m.notice", "body": "bot"}), False),
    (event("m.room.member", {"membership": "invite"}, state_key="@b:schule.test"), True),
    (event("m.room.member", {"membership": "join"}, state_key="@a:schule.test"), False),
    (event("m.room.member", {"membership": "invite"}, state_key="@a:schule.test"), False),
    (event("m.reaction", {}), False),
    (event("m.room.name", {"name": "x"}, state_key=""), False),
])
def test_wants_push(stored: StoredEvent, expected: bool) -> None:
    assert wants_push(stored) is expected


def mute_rule(room: str, actions: list[Any], **extra: Any) -> dict[str, Any]:
    return {"rule_id": room, "actions": actions, **extra,
            "conditions": [{"kind": "event_match", "key": "room_id", "pattern": room}]}


@pytest.mark.parametrize(("rules", "expected"), [
    (None, False),
    ({"global": {"override": [mute_rule(ROOM, ["dont_notify"])]}}, True),
    ({"global": {"override": [mute_rule(ROOM, [])]}}, True),
    ({"global": {"override": [mute_rule("!other:schule.test", [])]}}, False),
    ({"global": {"override": [mute_rule(ROOM, ["notify"])]}}, False),
    ({"global": {"override": [mute_rule(ROOM, [], enabled=False)]}}, False),
    ({"global": {"override": [{"rule_id": ".m.rule.master", "enabled": True,
                               "actions": [], "conditions": []}]}}, True),
    ({"global": {"override": [{"rule_id": ".m.rule.master", "enabled": False,
                               "actions": [], "conditions": []}]}}, False),
    ({"global": {"override": "nonsense"}}, False),
])
def test_is_muted(rules: Any, expected: bool) -> None:
    assert is_muted(rules, ROOM) is expected


def test_notification_has_no_content_sender_or_url() -> None:
    pusher = Pusher(1, "@b:schule.test", "app", "pk", "http", "App", "Phone", None, "de",
                    {"url": "https://gw.example/_matrix/push/v1/notify", "x": 1}, 1700000000)
    body = notification(event("m.room.message", {"body": "geheim"}), pusher)
    assert body == {"notification": {
        "event_id": "$e", "room_id": ROOM, "counts": {"unread": 1}, "prio": "high",
        "devices": [{"app_id": "app", "pushkey": "pk", "pushkey_ts": 1700000000,
                     "data": {"x": 1}}]}}
