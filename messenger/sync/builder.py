"""GET /sync (spec: Client-Server API 8.1 "Syncing").

Initial sync: for each joined room the last N events as ``timeline`` and the
state before them as ``state``; invites with stripped ``invite_state``.
Incremental sync from a token: new events per room (``limited`` with a
``prev_batch`` when more than N), the state changes the client missed when
the timeline had a gap, rooms newly joined in full, invites and leaves that
happened since.  With nothing new, the request waits on the notifier up to
``timeout`` ms.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import Database
from messenger.ephemeral import TypingTracker
from messenger.events.client_format import stripped_state
from messenger.identity import Requester
from messenger.limits import MessengerLimits
from messenger.render import render_events
from messenger.storage import device_messages as dm
from messenger.storage import events as store
from messenger.storage import user_data
from messenger.storage.events import StoredEvent
from messenger.storage.tables import MembershipRow
from messenger.sync import engine, v3
from messenger.sync.cache import SyncCache
from messenger.sync.engine import (
    DeviceChanges,
    InvitedRoom,
    JoinedRoom,
    LeftRoom,
    SyncResult,
    Timeline,
)
from messenger.sync.filters import SyncFilter
from messenger.sync.incremental import build_from_cache
from messenger.sync.notifier import Notifier
from messenger.sync.tokens import SyncToken, room_token
from messenger.unread import RoomUnread, UnreadCounts

INVITE_STATE_LIMIT = 20
INVITE_STATE_KEYS = ("m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar",
                     "m.room.canonical_alias", "m.room.encryption", "m.room.topic")


@dataclass(frozen=True)
class SyncRequest:
    since: SyncToken | None
    timeout_ms: int
    full_state: bool
    filter: SyncFilter


class SyncBuilder:
    def __init__(self, db: Database, notifier: Notifier, limits: MessengerLimits,
                 typing: TypingTracker | None = None, cache: SyncCache | None = None,
                 unread: UnreadCounts | None = None) -> None:
        self.db = db
        self.notifier = notifier
        self.limits = limits
        self.typing = typing or TypingTracker(notifier)
        # Without a cache shared with the writers, every sync reads the database.
        self.cache = cache
        # Notification counts (messenger.unread); without it every count is 0.
        self.unread = unread
        self.inline_filters: dict[str, SyncFilter] = {}  # filter JSON -> parsed (api.sync)
        self._building = asyncio.Semaphore(limits.max_concurrent_sync_builds)
        # (account, device) -> to-device position already deleted (acknowledged)
        self._acked: dict[tuple[int, str], int] = {}

    async def sync(self, requester: Requester, request: SyncRequest) -> dict[str, Any]:
        """The /v3/sync response: the engine's result through the v3 view."""
        return v3.render(await self.changes(requester, request))

    async def changes(self, requester: Requester, request: SyncRequest) -> SyncResult:
        """What changed for the user since ``request.since`` (all, without one),
        long-polling up to the timeout while nothing did."""
        await self._load_cache()
        rows = await self._memberships(requester.user_id)
        joined = {r.room_id for r in rows if r.membership == "join"}
        # Register before reading, so nothing stored meanwhile is missed.
        with self.notifier.waiting(requester.user_id, joined) as waiter:
            deadline = time.monotonic() + min(max(request.timeout_ms, 0),
                                              self.limits.max_sync_timeout_ms) / 1000
            while True:
                waiter.woken.clear()
                result = await self._build_cached(requester, request)
                if result is None:
                    async with self._building:
                        result = await self._build(requester, request)
                remaining = deadline - time.monotonic()
                if result.has_news or request.since is None or request.full_state \
                        or remaining <= 0:
                    return result
                if not await waiter.wait(remaining):
                    return result
                rows = await self._memberships(requester.user_id)
                waiter.update_rooms(r.room_id for r in rows if r.membership == "join")

    # --- what writers outside the room service tell the cache ------------------------
    def account_data_changed(self, user_id: str, stream_id: int) -> None:
        """Account data at ``stream_id`` was committed for ``user_id`` (spec 8.2.1)."""
        if self.cache is not None:
            self.cache.advance("account_data", stream_id)
        if self.unread is not None:
            self.unread.rules_changed(user_id)  # it may have been m.push_rules
        self.notifier.user_event(user_id)

    def keys_changed(self, account_id: int, device_id: str) -> None:
        """One-time or fallback keys of the device were uploaded or claimed."""
        if self.cache is not None:
            self.cache.forget_key_counts(account_id, device_id)

    def device_logged_in(self, account_id: int, device_id: str) -> None:
        """A login (re)made the device: nothing cached for an earlier one applies."""
        if self.cache is not None:
            self.cache.forget_device(account_id, device_id)

    async def _memberships(self, user_id: str) -> list[Any]:
        """The user's membership rows, from the cache when it has them."""
        cache = self.cache
        if cache is not None and (known := cache.memberships(user_id)) is not None:
            return list(known.values())
        generation = cache.membership_generation if cache is not None else 0
        async with self.db.read() as session:
            rows = await store.memberships_of(session, user_id)
        if cache is not None:
            cache.remember_memberships(user_id, rows, generation)
        return rows

    async def _load_cache(self) -> bool:
        """Make the cache cover from now on (at the first sync, and after a reset)."""
        cache = self.cache
        if cache is None:
            return False
        if not cache.ready:
            generation = cache.generation
            async with self.db.read() as session:
                maxima = await dm.stream_maxima(session)
            cache.load(maxima, generation)
        return cache.ready

    async def _build_cached(self, requester: Requester, request: SyncRequest,
                            ) -> SyncResult | None:
        """An incremental sync from memory, or None when the database must answer."""
        cache = self.cache
        if cache is None or request.since is None or request.full_state:
            return None
        if not await self._load_cache():
            return None
        await self._acknowledge_to_device(requester, request.since.to_device)
        if cache.memberships(requester.user_id) is None:
            await self._memberships(requester.user_id)
        if cache.key_counts(requester.account_id, requester.device_id) is None:
            generation = cache.key_generation
            async with self.db.read() as session:
                counts = await user_data.key_counts(session, requester.account_id,
                                                    requester.device_id)
            cache.remember_key_counts(requester.account_id, requester.device_id, counts,
                                      generation)
        limit = request.filter.timeline_limit
        if limit is None:
            limit = self.limits.default_timeline_limit
        limit = min(limit, self.limits.max_timeline_limit)
        if self.unread is not None:
            await self.unread.load(requester.user_id, await self._joined(requester.user_id))
        # No await from here on: the response is one consistent moment of the cache
        # (memberships, key counts or unread counts that changed during the reads
        # above are gone from it again, and then the database answers).
        result = build_from_cache(cache, self.typing, requester, request.since,
                                  request.filter, limit)
        if result is not None and self.unread is not None:
            unread = self.unread.cached(requester.user_id)
            if unread is None:
                return None
            add_counts(result, unread, request.filter.unread_thread_notifications)
        return result

    async def _joined(self, user_id: str) -> list[str]:
        return [r.room_id for r in await self._memberships(user_id) if r.membership == "join"]

    async def _add_counts(self, requester: Requester, request: SyncRequest,
                          result: SyncResult) -> None:
        """The unread counts of the joined rooms in ``result`` (spec 8.1, 11.6.2.3)."""
        if self.unread is None:
            add_counts(result, {}, request.filter.unread_thread_notifications)
            return
        unread = await self.unread.load(requester.user_id,
                                        await self._joined(requester.user_id))
        add_counts(result, unread, request.filter.unread_thread_notifications)

    async def _build(self, requester: Requester, request: SyncRequest) -> SyncResult:
        since = request.since
        limit = request.filter.timeline_limit
        if limit is None:
            limit = self.limits.default_timeline_limit
        limit = min(limit, self.limits.max_timeline_limit)
        result = SyncResult(SyncToken(0, 0))
        if since is not None:
            await self._acknowledge_to_device(requester, since.to_device)
        async with self.db.read() as session:
            now = SyncToken(*await dm.stream_maxima(session), self.typing.serial)
            if since is not None and since.ahead_of(now):
                since = None  # a token from a reset database: start afresh
            global_data, room_data = await engine.account_data_between(
                session, requester, since.account_data if since else 0, now.account_data)
            result.account_data = global_data
            memberships = await store.memberships_of(session, requester.user_id)
            joined_now = [r.room_id for r in memberships if r.membership == "join"]
            # Incremental: one query finds the rooms with news; the rest are skipped.
            changed_rooms = None if since is None or request.full_state else \
                await store.room_ids_with_events_between(session, joined_now, since.events,
                                                         now.events)
            for row in memberships:
                if row.forgotten or not request.filter.wants_room(row.room_id):
                    continue
                if row.membership == "join":
                    room = None
                    if changed_rooms is None or row.room_id in changed_rooms:
                        room = await self._joined_room(session, requester, row, since, now,
                                                       limit, request)
                    if room is not None or row.room_id in room_data:
                        room = room or JoinedRoom()
                        room.account_data = room_data.get(row.room_id, [])
                        result.join[row.room_id] = room
                elif row.membership == "invite":
                    if since is None or row.stream_ordering > since.events:
                        result.invite[row.room_id] = await self._invited_room(session, row)
                elif row.membership in ("leave", "ban"):
                    wanted = (row.stream_ordering > since.events) if since is not None \
                        else request.filter.include_leave
                    if wanted:
                        result.leave[row.room_id] = await self._left_room(
                            session, requester, row, since, limit, request)
            joined_ids = [r for r in joined_now if request.filter.wants_room(r)]
            ephemeral = await self._ephemeral(session, joined_ids, since, now)
            for room_id, events in ephemeral.items():
                result.join.setdefault(room_id, JoinedRoom()).ephemeral = events
            result.to_device, to_device_pos = await engine.to_device_between(
                session, requester, since.to_device if since is not None else 0,
                now.to_device)
            changed = await engine.changed_devices(
                session, requester, since.device_lists, now.device_lists) \
                if since is not None else set()
            left: set[str] = set()
            if since is not None:
                joined, left = await engine.membership_device_changes(
                    session, requester, since.events, now.events)
                changed |= joined
            counts, fallback = engine.key_counts_with_default(await user_data.key_counts(
                session, requester.account_id, requester.device_id))
        result.next_batch = dataclasses.replace(now, to_device=to_device_pos)
        result.devices = DeviceChanges(sorted(changed), sorted(left), counts, fallback)
        await self._add_counts(requester, request, result)
        return result

    async def _ephemeral(self, session: AsyncSession, room_ids: list[str],
                         since: SyncToken | None, now: SyncToken) -> dict[str, list[Any]]:
        """Typing and receipts per joined room (spec 13.6, 13.7: ``ephemeral``)."""
        out: dict[str, list[Any]] = {}
        for room_id, event in engine.typing_changes(self.typing, room_ids,
                                                    since.typing if since else None).items():
            out.setdefault(room_id, []).append(event)
        after = since.receipts if since is not None else 0
        if now.receipts > after:
            for room_id, event in (await engine.receipts_between(
                    session, room_ids, after, now.receipts)).items():
                out.setdefault(room_id, []).append(event)
        return out

    async def _acknowledge_to_device(self, requester: Requester, position: int) -> None:
        """A token past a to-device message acknowledges it (spec 11.11.3): delete.

        One small write per advance, not per sync: ``_acked`` remembers how far."""
        key = (requester.account_id, requester.device_id)
        if position <= self._acked.get(key, 0):
            return
        async with self.db.write() as session:
            await dm.delete_to_device_upto(session, *key, position)
        self._acked[key] = position
        if len(self._acked) > 100_000:
            self._acked.clear()

    async def _timeline(self, session: AsyncSession, room_id: str, after: int, upto: int,
                        limit: int, request: SyncRequest) -> tuple[list[StoredEvent], bool]:
        newest = await store.room_events(session, room_id, after=after, upto=upto,
                                         limit=limit + 1, newest_first=True)
        limited = len(newest) > limit
        events = list(reversed(newest[:limit]))
        return [e for e in events if request.filter.wants_type(e.type)], limited

    async def _joined_room(self, session: AsyncSession, requester: Requester,
                           row: MembershipRow, since: SyncToken | None, now: SyncToken,
                           limit: int, request: SyncRequest) -> JoinedRoom | None:
        full = since is None or request.full_state or row.stream_ordering > since.events
        after = 0 if since is None or row.stream_ordering > since.events else since.events
        events, limited = await self._timeline(session, row.room_id, after, now.events, limit,
                                               request)
        if not full and not events:
            return None
        start = events[0].stream_ordering - 1 if events else now.events
        if full:
            state = list((await store.state_at(session, row.room_id, start)).values())
        elif limited:
            state = [e for e in (await store.state_at(session, row.room_id, start)).values()
                     if e.stream_ordering > since.events]  # type: ignore[union-attr]
        else:
            state = []
        state.sort(key=lambda e: e.stream_ordering)
        room = JoinedRoom(
            timeline=Timeline(await render_events(session, requester, events,
                                                  include_room_id=False),
                              limited, room_token(start)),
            state=await render_events(session, requester, state, include_room_id=False))
        # The summary only when membership may have changed (spec: may be omitted
        # when unchanged): it costs a query per room per sync otherwise.
        if full or state or any(e.type == "m.room.member" for e in events):
            room.summary = await _summary(session, row.room_id, requester.user_id)
        return room

    async def _invited_room(self, session: AsyncSession, row: MembershipRow) -> InvitedRoom:
        state = await store.current_state(session, row.room_id,
                                          [(t, "") for t in INVITE_STATE_KEYS])
        events = [stripped_state(e.pdu) for e in state.values()]
        invite = await store.get_event(session, row.event_id)
        if invite is not None:
            # An invitation from another server: the room is not here, its server
            # sent the stripped state along (Server-Server API "invite" v2).
            sent = (invite.pdu.get("unsigned") or {}).get("invite_room_state")
            if not events and isinstance(sent, list):
                events = [e for e in sent if isinstance(e, dict)
                          and isinstance(e.get("type"), str)][:INVITE_STATE_LIMIT]
            events.append(stripped_state(invite.pdu))
        return InvitedRoom(events)

    async def _left_room(self, session: AsyncSession, requester: Requester,
                         row: MembershipRow, since: SyncToken | None, limit: int,
                         request: SyncRequest) -> LeftRoom:
        after = since.events if since is not None else 0
        events, limited = await self._timeline(session, row.room_id, after,
                                               row.stream_ordering, limit, request)
        start = events[0].stream_ordering - 1 if events else row.stream_ordering
        return LeftRoom(Timeline(await render_events(session, requester, events,
                                                     include_room_id=False),
                                 limited, room_token(start)))


def add_counts(result: SyncResult, unread: dict[str, RoomUnread], per_thread: bool) -> None:
    """``unread_notifications`` of each joined room in the result: the whole room's,
    or with ``per_thread`` (the filter's ``unread_thread_notifications``) the main
    timeline's, and the threads' apart."""
    for room_id, room in result.join.items():
        counts = unread.get(room_id)
        if counts is None:
            if per_thread:
                room.extra["unread_thread_notifications"] = {}
            continue
        total = counts.main() if per_thread else counts.total()
        room.notification_count, room.highlight_count = total.notifications, total.highlights
        if per_thread:
            room.extra["unread_thread_notifications"] = {
                thread: {"notification_count": c.notifications,
                         "highlight_count": c.highlights}
                for thread, c in counts.per_thread().items()}


async def _summary(session: AsyncSession, room_id: str, me: str) -> dict[str, Any]:
    members = await store.room_members(session, room_id)
    joined = [m.user_id for m in members if m.membership == "join"]
    invited = [m.user_id for m in members if m.membership == "invite"]
    return {"m.joined_member_count": len(joined), "m.invited_member_count": len(invited),
            "m.heroes": sorted(u for u in joined + invited if u != me)[:5]}
