"""The predefined push rules (spec: Client-Server API v1.12 13.13.1.2 "Predefined
Rules", with the deprecated body-matching mention rules that clients still show):
every user's ruleset until they edit it (messenger.push_ruleset), evaluated by
messenger.push_evaluator."""

from __future__ import annotations

from typing import Any


def _rule(rule_id: str, conditions: list[dict[str, Any]], actions: list[Any],
          **extra: Any) -> dict[str, Any]:
    return {"rule_id": rule_id, "default": True, "enabled": True, "conditions": conditions,
            "actions": actions, **extra}


def _event_match(key: str, pattern: str) -> dict[str, Any]:
    return {"kind": "event_match", "key": key, "pattern": pattern}


NOTIFY = ["notify"]
SOUND = {"set_tweak": "sound", "value": "default"}
HIGHLIGHT = {"set_tweak": "highlight"}


def default_push_rules(user_id: str) -> dict[str, Any]:
    localpart = user_id[1:].partition(":")[0]
    override = [
        {**_rule(".m.rule.master", [], []), "enabled": False},
        _rule(".m.rule.suppress_notices", [_event_match("content.msgtype", "m.notice")], []),
        _rule(".m.rule.invite_for_me", [
            _event_match("type", "m.room.member"), _event_match("content.membership", "invite"),
            _event_match("state_key", user_id)], [*NOTIFY, SOUND]),
        _rule(".m.rule.member_event", [_event_match("type", "m.room.member")], []),
        _rule(".m.rule.is_user_mention", [
            {"kind": "event_property_contains", "key": "content.m\\.mentions.user_ids",
             "value": user_id}], [*NOTIFY, SOUND, HIGHLIGHT]),
        _rule(".m.rule.contains_display_name", [{"kind": "contains_display_name"}],
              [*NOTIFY, SOUND, HIGHLIGHT]),
        _rule(".m.rule.is_room_mention", [
            {"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
            {"kind": "sender_notification_permission", "key": "room"}], [*NOTIFY, HIGHLIGHT]),
        _rule(".m.rule.roomnotif", [
            _event_match("content.body", "@room"),
            {"kind": "sender_notification_permission", "key": "room"}], [*NOTIFY, HIGHLIGHT]),
        _rule(".m.rule.tombstone", [_event_match("type", "m.room.tombstone"),
                                    _event_match("state_key", "")], [*NOTIFY, HIGHLIGHT]),
        _rule(".m.rule.reaction", [_event_match("type", "m.reaction")], []),
        _rule(".m.rule.room.server_acl", [_event_match("type", "m.room.server_acl"),
                                          _event_match("state_key", "")], []),
        _rule(".m.rule.suppress_edits", [
            {"kind": "event_property_is", "key": "content.m\\.relates_to.rel_type",
             "value": "m.replace"}], []),
    ]
    content = [_rule(".m.rule.contains_user_name", [], [*NOTIFY, SOUND, HIGHLIGHT],
                     pattern=localpart)]
    underride = [
        _rule(".m.rule.call", [_event_match("type", "m.call.invite")],
              [*NOTIFY, {"set_tweak": "sound", "value": "ring"}]),
        _rule(".m.rule.encrypted_room_one_to_one", [
            {"kind": "room_member_count", "is": "2"}, _event_match("type", "m.room.encrypted")],
            [*NOTIFY, SOUND]),
        _rule(".m.rule.room_one_to_one", [
            {"kind": "room_member_count", "is": "2"}, _event_match("type", "m.room.message")],
            [*NOTIFY, SOUND]),
        _rule(".m.rule.message", [_event_match("type", "m.room.message")], NOTIFY),
        _rule(".m.rule.encrypted", [_event_match("type", "m.room.encrypted")], NOTIFY),
    ]
    return {"global": {"override": override, "content": content, "room": [], "sender": [],
                       "underride": underride}}
