"""The /v3/sync view (spec: Client-Server API 8.1 "GET /sync" response): a
``SyncResult`` of the sync engine as the JSON clients read."""

from __future__ import annotations

from typing import Any

from messenger.sync.engine import InvitedRoom, JoinedRoom, LeftRoom, SyncResult, Timeline


def _timeline(timeline: Timeline) -> dict[str, Any]:
    out: dict[str, Any] = {"events": timeline.events, "limited": timeline.limited}
    if timeline.prev_batch is not None:
        out["prev_batch"] = timeline.prev_batch
    return out


def _joined(room: JoinedRoom) -> dict[str, Any]:
    return {
        "timeline": _timeline(room.timeline),
        "state": {"events": room.state},
        "ephemeral": {"events": room.ephemeral},
        "account_data": {"events": room.account_data},
        "unread_notifications": {"highlight_count": room.highlight_count,
                                 "notification_count": room.notification_count},
        "summary": room.summary,
        **room.extra,
    }


def _invited(room: InvitedRoom) -> dict[str, Any]:
    return {"invite_state": {"events": room.invite_state}}


def _left(room: LeftRoom) -> dict[str, Any]:
    return {"timeline": _timeline(room.timeline), "state": {"events": room.state},
            "account_data": {"events": room.account_data}}


def render(result: SyncResult) -> dict[str, Any]:
    devices = result.devices
    return {
        "next_batch": str(result.next_batch),
        "rooms": {"join": {r: _joined(room) for r, room in result.join.items()},
                  "invite": {r: _invited(room) for r, room in result.invite.items()},
                  "leave": {r: _left(room) for r, room in result.leave.items()},
                  "knock": {}},
        "account_data": {"events": result.account_data},
        "to_device": {"events": result.to_device},
        "presence": {"events": []},
        "device_lists": {"changed": devices.changed, "left": devices.left},
        "device_one_time_keys_count": devices.one_time_key_counts,
        "device_unused_fallback_key_types": devices.fallback_key_types,
    }
