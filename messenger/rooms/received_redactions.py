"""Redaction events received from other servers, applied to their targets.

Room versions 3 and later (Client-Server API "Redactions", Server-Server API
"Redactions"): the auth rules accept a redaction event, and a server applies it
when it has the target and either both were sent from the same server (a
user's own events, or that server's moderation) or the redaction's sender has
the room's redact power level.  A redaction whose target is not here yet is
kept as an event; when the target arrives later (a fetch that failed, history
backfilled afterwards) it is applied then, and the target is stored redacted
before anyone sees it (``apply_earlier_redactions``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from messenger.events.identifiers import server_of
from messenger.events.redaction import redact
from messenger.events.room_versions import RoomVersion
from messenger.rooms.lookups import room_power_levels
from messenger.storage import events as store
from messenger.storage.events import StoredEvent


def redacted_target(pdu: Mapping[str, Any], version: RoomVersion) -> str | None:
    """The event id a redaction event names (in the content from room version 11)."""
    if pdu.get("type") != "m.room.redaction":
        return None
    target = (pdu.get("content") or {}).get("redacts") if version.redacts_in_content \
        else pdu.get("redacts")
    return target if isinstance(target, str) else None


async def apply_received_redaction(session: AsyncSession, event: StoredEvent,
                                   version: RoomVersion) -> StoredEvent | None:
    """The target as now stored (redacted), or None when there is nothing to apply."""
    target_id = redacted_target(event.pdu, version)
    if target_id is None:
        return None
    target = await store.get_event(session, target_id)
    if target is None or target.room_id != event.room_id or target.redacted_by is not None:
        return None
    sender = str(event.pdu.get("sender", ""))
    if server_of(sender) != server_of(target.sender):
        levels = await room_power_levels(session, event.room_id)
        if levels.user_level(sender) < levels.redact:
            return None
    body = redact(target.pdu, version)
    await store.replace_with_redacted(session, target.event_id, body, event.event_id)
    body = {k: v for k, v in body.items() if k != "event_id"}
    return StoredEvent(target.event_id, target.stream_ordering, event.room_id,
                       {**body, "event_id": target.event_id}, event.event_id)


async def apply_earlier_redactions(session: AsyncSession, event: StoredEvent,
                                   version: RoomVersion) -> StoredEvent:
    """``event`` just stored, redacted if a redaction of it came first (and may apply,
    as ``apply_received_redaction`` judges); else ``event`` as it is."""
    for redaction in await store.redactions_naming(session, event.room_id, event.event_id):
        if redaction.event_id == event.event_id \
                or redacted_target(redaction.pdu, version) != event.event_id:
            continue
        applied = await apply_received_redaction(session, redaction, version)
        if applied is not None:
            return applied
    return event
