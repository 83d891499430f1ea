"""Incremental /sync from the in-memory ``SyncCache`` (spec: Client-Server API 8.1
"Syncing"), for the common case of a client that is up to date.

The response is exactly what ``SyncBuilder._build`` would make from the
database for the same ``since``; whenever that needs something the cache does
not hold, this returns None and the database answers:

* another stream than events moved (account data, to-device, device lists,
  receipts): those are read from their tables;
* a room's timeline is limited, or holds a membership event (then the response
  carries state or a summary), or the ring no longer reaches back to ``since``;
* the user joined, was invited to or left a room after ``since``.
"""

from __future__ import annotations

import time

from messenger.ephemeral import TypingTracker
from messenger.identity import Requester
from messenger.sync import engine
from messenger.sync.cache import SyncCache, relates_within
from messenger.sync.engine import DeviceChanges, JoinedRoom, SyncResult, Timeline
from messenger.sync.filters import SyncFilter
from messenger.sync.tokens import SyncToken, room_token

_OTHER_STREAMS = ("account_data", "to_device", "device_lists", "receipts")


def build_from_cache(cache: SyncCache, typing: TypingTracker, requester: Requester,
                     since: SyncToken, sync_filter: SyncFilter, limit: int,
                     ) -> SyncResult | None:
    """The result ``SyncBuilder._build`` makes from the database, or None."""
    if not cache.ready:
        return None
    memberships = cache.memberships(requester.user_id)
    counts = cache.key_counts(requester.account_id, requester.device_id)
    if memberships is None or counts is None:
        return None
    positions = cache.positions
    now = SyncToken(positions["events"], positions["account_data"], positions["to_device"],
                    positions["device_lists"], positions["receipts"], typing.serial)
    if since.ahead_of(now) or any(getattr(since, s) != positions[s] for s in _OTHER_STREAMS):
        return None
    if since.events < cache.base:
        return None
    now_ms = int(time.time() * 1000)
    who = (requester.user_id, requester.account_id, requester.device_id)
    joins: dict[str, JoinedRoom] = {}
    joined_ids: list[str] = []
    for row in memberships.values():
        if row.membership == "join":
            if sync_filter.wants_room(row.room_id):
                joined_ids.append(row.room_id)
        elif row.membership == "invite" or row.membership in ("leave", "ban"):
            # New invites and leaves carry state: the database has it.
            if row.stream_ordering > since.events and not row.forgotten \
                    and sync_filter.wants_room(row.room_id):
                return None
            continue
        if row.forgotten or not sync_filter.wants_room(row.room_id):
            continue
        if row.stream_ordering > since.events:
            return None  # joined since: the room comes in full
        events = cache.room_events_since(row.room_id, since.events)
        if events is None or len(events) > limit:
            return None  # a gap in the cache, or a limited timeline with state
        if any(e.event.type == "m.room.member" for e in events):
            # The response carries the room summary, device list changes and leaves.
            return None
        if relates_within(events):
            return None  # an event and its edit, reaction or reply: bundled aggregations
        wanted = [e for e in events if sync_filter.wants_type(e.event.type)]
        if not wanted:
            continue
        joins[row.room_id] = JoinedRoom(timeline=Timeline(
            [e.render(*who, now_ms) for e in wanted], False,
            room_token(wanted[0].event.stream_ordering - 1)))
    for room_id, event in engine.typing_changes(typing, joined_ids, since.typing).items():
        joins.setdefault(room_id, JoinedRoom()).ephemeral.append(event)
    key_counts, fallback = engine.key_counts_with_default(counts)
    return SyncResult(now, join=joins, devices=DeviceChanges([], [], key_counts, fallback))
