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

from collections.abc import Iterable, Mapping, Sequence
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
                                   version: RoomVersion,
                                   candidates: Sequence[StoredEvent] | None = None
                                   ) -> StoredEvent:
    """``event`` just stored, redacted if a redaction of it came first (and may apply,
    as ``apply_received_redaction`` judges); else ``event`` as it is.  ``candidates``:
    the stored redaction events that may name it, in stream order, when the caller
    has read them already (``PendingRedactions``); None: read here."""
    if candidates is None:
        candidates = await store.redactions_naming(session, event.room_id, event.event_id)
    for redaction in candidates:
        if redaction.event_id == event.event_id \
                or redacted_target(redaction.pdu, version) != event.event_id:
            continue
        applied = await apply_received_redaction(session, redaction, version)
        if applied is not None:
            return applied
    return event


class PendingRedactions:
    """The redaction events that may name the events of one write transaction (a
    received transaction's PDUs), read in one query instead of one per event, and
    kept up to date as the transaction stores more redactions."""

    def __init__(self, found: Iterable[StoredEvent], version_of: Mapping[str, RoomVersion]
                 ) -> None:
        self._version_of = version_of
        self._by_target: dict[str, list[StoredEvent]] = {}
        for redaction in found:
            self.stored(redaction)

    @classmethod
    async def read(cls, session: AsyncSession, event_ids: Iterable[str],
                   version_of: Mapping[str, RoomVersion]) -> PendingRedactions:
        """``version_of``: room id -> its version, for every room the events are in."""
        return cls(await store.redactions_naming_any(session, version_of, event_ids),
                   version_of)

    def stored(self, event: StoredEvent) -> None:
        """``event`` was stored in the transaction: if a redaction, a later event of
        the transaction may be its target."""
        version = self._version_of.get(event.room_id)
        target = redacted_target(event.pdu, version) if version is not None else None
        if target is not None:
            self._by_target.setdefault(target, []).append(event)

    def replaced(self, event: StoredEvent) -> None:
        """``event`` is now stored redacted: as a redaction it names what its redacted
        form names (from room version 11 the same, before that nothing)."""
        for target, redactions in self._by_target.items():
            self._by_target[target] = [r for r in redactions if r.event_id != event.event_id]
        self.stored(event)

    def naming(self, event: StoredEvent) -> list[StoredEvent]:
        """The redactions of ``event``'s room that name it, in stream order."""
        return sorted((r for r in self._by_target.get(event.event_id, ())
                       if r.room_id == event.room_id), key=lambda r: r.stream_ordering)
