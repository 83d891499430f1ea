"""The redaction algorithm (spec: Room Versions 10 and 11, "Redactions").

Used twice: to compute reference hashes (event ids are taken over the
redacted form) and to strip an event a redaction has hit.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from messenger.events.room_versions import RoomVersion

_TOP_LEVEL_V10 = frozenset({
    "event_id", "type", "room_id", "sender", "state_key", "content", "hashes",
    "signatures", "depth", "prev_events", "prev_state", "auth_events", "origin",
    "origin_server_ts", "membership",
})
_TOP_LEVEL_V11 = frozenset({
    "event_id", "type", "room_id", "sender", "state_key", "content", "hashes",
    "signatures", "depth", "prev_events", "auth_events", "origin_server_ts",
})

_CONTENT_V10: dict[str, frozenset[str]] = {
    "m.room.member": frozenset({"membership", "join_authorised_via_users_server"}),
    "m.room.create": frozenset({"creator"}),
    "m.room.join_rules": frozenset({"join_rule", "allow"}),
    "m.room.power_levels": frozenset({"ban", "events", "events_default", "kick", "redact",
                                      "state_default", "users", "users_default"}),
    "m.room.history_visibility": frozenset({"history_visibility"}),
}
_CONTENT_V11: dict[str, frozenset[str]] = {
    **_CONTENT_V10,
    "m.room.power_levels": _CONTENT_V10["m.room.power_levels"] | {"invite"},
    "m.room.redaction": frozenset({"redacts"}),
}


def redact(event: Mapping[str, Any], version: RoomVersion) -> dict[str, Any]:
    """A new dict: ``event`` stripped to what the room version's algorithm keeps."""
    top = _TOP_LEVEL_V11 if version.updated_redaction_rules else _TOP_LEVEL_V10
    allowed_content = _CONTENT_V11 if version.updated_redaction_rules else _CONTENT_V10
    out = {k: copy.deepcopy(v) for k, v in event.items() if k in top}
    content = event.get("content")
    content = content if isinstance(content, Mapping) else {}
    event_type = event.get("type")
    if event_type == "m.room.create" and version.updated_redaction_rules:
        kept = copy.deepcopy(dict(content))
    else:
        keys = allowed_content.get(event_type, frozenset()) if isinstance(event_type, str) \
            else frozenset()
        kept = {k: copy.deepcopy(v) for k, v in content.items() if k in keys}
        if event_type == "m.room.member" and version.updated_redaction_rules:
            invite = content.get("third_party_invite")
            if isinstance(invite, Mapping) and "signed" in invite:
                kept["third_party_invite"] = {"signed": copy.deepcopy(invite["signed"])}
    out["content"] = kept
    return out
