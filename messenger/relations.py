"""Relations between events as clients read them (spec: Client-Server API v1.12,
"Forming relationships between events" (``/relations``, server-side aggregation),
"Threading" (``/threads``, the ``m.thread`` bundle), "Event replacements" and
"Event annotations and reactions").

Bundled aggregations (``unsigned["m.relations"]``), per the spec since v1.7:

- ``m.thread``: ``latest_event`` (the whole event), ``count`` and
  ``current_user_participated`` (the user sent the root or a reply);
- ``m.replace``: the most recent valid edit as a whole event; the original's
  ``content`` is *not* replaced (MSC3925).  Valid means: same sender and type
  as the original, and the original is not itself an edit;
- ``m.reference``: ``chunk`` of ``{"event_id"}``;
- ``m.annotation`` (reactions): ``chunk`` of ``{"type", "key", "count"}`` as
  Synapse long bundled it (MSC2677); clients also count reactions themselves.

A user who left a room sees relations only up to the moment they left.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import Database
from messenger.events.client_format import client_event
from messenger.rooms.errors import RoomNotFound
from messenger.rooms.reading import RoomReader
from messenger.storage import events as store
from messenger.storage import relations as relation_store
from messenger.storage.events import StoredEvent

BUNDLED_TYPES = ("m.thread", "m.replace", "m.reference", "m.annotation")
MAX_RECURSION_DEPTH = 3  # spec: servers pick their own; Synapse uses 3
MAX_RECURSED_TARGETS = 1000  # a bound on the ids one recursive request collects


@dataclass(frozen=True)
class RelationsPage:
    events: list[StoredEvent]
    next_position: int | None
    recursion_depth: int | None = None


@dataclass(frozen=True)
class ThreadsPage:
    roots: list[StoredEvent]
    next_position: int | None


class Relations:
    """The /relations and /threads reads, over the room reader's visibility rule."""

    def __init__(self, db: Database, reader: RoomReader) -> None:
        self._db = db
        self._reader = reader

    async def _visible_target(self, session: AsyncSession, user_id: str, room_id: str,
                              event_id: str) -> int:
        upto = await self._reader.visible_upto(session, user_id, room_id)
        target = await store.get_event(session, event_id)
        if target is None or target.room_id != room_id or target.stream_ordering > upto:
            raise RoomNotFound(f"unknown event {event_id}")
        return upto

    async def relations(self, user_id: str, room_id: str, event_id: str, *,
                        rel_type: str | None, event_type: str | None,
                        from_position: int | None, to_position: int | None,
                        backwards: bool, limit: int, recurse: bool) -> RelationsPage:
        """GET /v1/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]:
        positions are stream orderings, as in /messages (a token p lies after event p)."""
        async with self._db.read() as session:
            upto = await self._visible_target(session, user_id, room_id, event_id)
            targets = [event_id]
            depth = None
            if recurse:
                targets, depth = await self._descendants(session, room_id, event_id, upto)
            if backwards:
                before = from_position + 1 if from_position is not None else None
                after = to_position
            else:
                after = from_position
                before = to_position + 1 if to_position is not None else None
            page = await relation_store.related(
                session, room_id, targets, upto=upto, rel_type=rel_type, event_type=event_type,
                after=after, before=before, limit=limit, newest_first=backwards)
            found = await store.get_events(session, page.event_ids)
        events = [found[i] for i in page.event_ids if i in found]
        next_position = page.next_position
        if next_position is not None and backwards:
            next_position -= 1
        return RelationsPage(events, next_position, depth)

    async def _descendants(self, session: AsyncSession, room_id: str, event_id: str,
                           upto: int) -> tuple[list[str], int]:
        """The event and what relates to it, to MAX_RECURSION_DEPTH levels."""
        known = [event_id]
        level = [event_id]
        depth = 0
        while level and depth < MAX_RECURSION_DEPTH - 1 and len(known) < MAX_RECURSED_TARGETS:
            facts = await relation_store.relations_to(session, level, None,
                                                      upto={room_id: upto})
            level = [f.event_id for f in facts if f.event_id not in known]
            known += level[:MAX_RECURSED_TARGETS - len(known)]
            depth += 1 if level else 0
        return known, depth + 1

    async def threads(self, user_id: str, room_id: str, *, participated_only: bool,
                      from_position: int | None, limit: int) -> ThreadsPage:
        """GET /v1/rooms/{roomId}/threads: roots by most recent reply, newest first;
        the token is the latest reply position of the last root on the page."""
        async with self._db.read() as session:
            upto = await self._reader.visible_upto(session, user_id, room_id)
            rows = await relation_store.threads(
                session, room_id, upto=upto, before=from_position, limit=limit + 1,
                participant=user_id if participated_only else None)
            more = len(rows) > limit
            rows = rows[:limit]
            found = await store.get_events(session, [r.root_id for r in rows])
        roots = [found[r.root_id] for r in rows if r.root_id in found
                 and found[r.root_id].room_id == room_id]
        return ThreadsPage(roots, rows[-1].latest_position if more and rows else None)


async def bundled_aggregations(session: AsyncSession, user_id: str | None,
                               events: Sequence[StoredEvent], *, now_ms: int,
                               ) -> dict[str, dict[str, Any]]:
    """``unsigned["m.relations"]`` for each event that has any (event id -> bundle)."""
    targets = {e.event_id: e for e in events if e.state_key is None and e.redacted_by is None}
    if not targets:
        return {}
    facts = await relation_store.relations_to(session, targets, BUNDLED_TYPES)
    if not facts:
        return {}
    upto = await _visible_positions(session, user_id, {e.room_id for e in targets.values()})
    facts = [f for f in facts if f.stream_ordering <= upto.get(targets[f.relates_to].room_id,
                                                                f.stream_ordering)]
    by_target: dict[str, list[relation_store.RelationFact]] = defaultdict(list)
    for fact in facts:
        by_target[fact.relates_to].append(fact)
    wanted: set[str] = set()
    for target_id, related in by_target.items():
        threads = [f for f in related if f.rel_type == "m.thread"]
        if threads:
            wanted.add(threads[-1].event_id)
        edits = _valid_edits(targets[target_id], related)
        if edits:
            wanted.add(edits[-1].event_id)
    loaded = await store.get_events(session, wanted)
    out: dict[str, dict[str, Any]] = {}
    for target_id, related in by_target.items():
        bundle = _bundle(targets[target_id], related, loaded, user_id, now_ms)
        if bundle:
            out[target_id] = bundle
    return out


def _valid_edits(original: StoredEvent, related: list[relation_store.RelationFact],
                 ) -> list[relation_store.RelationFact]:
    """Edits that may replace ``original`` (spec "Validity of replacement events")."""
    if _relation_type(original) == "m.replace":
        return []
    return [f for f in related if f.rel_type == "m.replace" and f.sender == original.sender
            and f.event_type == original.type]


def _relation_type(event: StoredEvent) -> str | None:
    relation = relation_store.relation_of(event.pdu.get("content"))
    return relation.rel_type if relation else None


def _bundle(original: StoredEvent, related: list[relation_store.RelationFact],
            loaded: Mapping[str, StoredEvent], user_id: str | None,
            now_ms: int) -> dict[str, Any]:
    bundle: dict[str, Any] = {}
    threads = [f for f in related if f.rel_type == "m.thread"]
    if threads and threads[-1].event_id in loaded:
        bundle["m.thread"] = {
            "latest_event": client_event(loaded[threads[-1].event_id].pdu, now_ms=now_ms),
            "count": len(threads),
            "current_user_participated": user_id is not None and (
                original.sender == user_id or any(f.sender == user_id for f in threads)),
        }
    edits = _valid_edits(original, related)
    if edits and edits[-1].event_id in loaded:
        bundle["m.replace"] = client_event(loaded[edits[-1].event_id].pdu, now_ms=now_ms)
    references = [f for f in related if f.rel_type == "m.reference"]
    if references:
        bundle["m.reference"] = {"chunk": [{"event_id": f.event_id} for f in references]}
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for f in related:
        if f.rel_type == "m.annotation" and f.key is not None:
            counts[(f.event_type, f.key)] += 1
    if counts:
        bundle["m.annotation"] = {"chunk": [
            {"type": t, "key": k, "count": n}
            for (t, k), n in sorted(counts.items(), key=lambda item: -item[1])]}
    return bundle


async def _visible_positions(session: AsyncSession, user_id: str | None,
                             room_ids: set[str]) -> dict[str, int]:
    """room -> last visible position for rooms the user has left (joined: no cap)."""
    if user_id is None:
        return {}
    out = {}
    for row in await store.memberships_of(session, user_id):
        if row.room_id in room_ids and row.membership != "join":
            out[row.room_id] = row.stream_ordering
    return out
