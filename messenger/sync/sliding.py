"""Simplified sliding sync (MSC4186): room lists in windows, room subscriptions and
the extensions Element X needs, as a view over the sync engine's streams
(``messenger.sync.engine``: the same stream readers and token as /v3/sync).

One request: resolve the connection's snapshot (``pos``), find the user's rooms
(memberships), order each list by recency (``bump_stamp``, newest first),
filter it, take the rooms in its ranges plus the subscribed rooms, and for
each decide against the snapshot what the client lacks: everything
(``initial``), the events since the room was last sent, or nothing.  The
extensions read their streams from the snapshot's token.  With nothing new
and a ``pos``, wait on the notifier up to ``timeout`` (long-poll), as /v3/sync
does.  An incremental update of a room the sync cache covers is built from
memory without the database (the common case: a new message in a room).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from messenger.events.client_format import client_event, stripped_state
from messenger.identity import Requester
from messenger.render import render_events
from messenger.rooms.errors import InvalidRequest
from messenger.storage import device_messages as dm
from messenger.storage import events as store
from messenger.storage import room_lists, user_data
from messenger.storage.events import StoredEvent
from messenger.sync import engine
from messenger.sync.builder import INVITE_STATE_KEYS, SyncBuilder
from messenger.sync.cache import relates_within
from messenger.sync.sliding_connections import (
    Config,
    Connection,
    Connections,
    SentRoom,
    Snapshot,
)
from messenger.sync.sliding_request import (
    WILDCARD,
    ExtensionConfig,
    ListConfig,
    RoomConfig,
    SlidingRequest,
)
from messenger.sync.tokens import SyncToken, room_token
from messenger.unread import EMPTY, RoomUnread

MAX_HEROES = 5
DEFAULT_TO_DEVICE_LIMIT = 100
SHOWN = ("join", "invite")  # memberships whose rooms are in lists
MAX_ROOM_TYPES = 100_000


@dataclass
class SlidingRoom:
    """One room of a response (MSC4186 "Room response"); ``extra`` carries fields
    other features add (e.g. ``unread_thread_notifications``) without a change here."""

    bump_stamp: int | None = None
    notification_count: int = 0
    highlight_count: int = 0
    initial: bool = False
    name: str | None = None
    avatar: str | None = None
    heroes: list[dict[str, Any]] | None = None
    joined_count: int | None = None
    invited_count: int | None = None
    is_dm: bool = False
    required_state: list[Any] | None = None
    timeline: list[Any] | None = None
    limited: bool | None = None
    prev_batch: str | None = None
    num_live: int | None = None
    invite_state: list[Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"notification_count": self.notification_count,
                               "highlight_count": self.highlight_count}
        for key in ("bump_stamp", "name", "avatar", "heroes", "joined_count", "invited_count",
                    "required_state", "timeline", "limited", "prev_batch", "num_live",
                    "invite_state"):
            value = getattr(self, key)
            # Empty lists are left out, as Synapse does (absent: nothing new).
            if value is not None and value != []:
                out[key] = value
        if self.initial:
            out["initial"] = True
        if self.is_dm:
            out["is_dm"] = True
        out.update(self.extra)
        return out


@dataclass
class SlidingResult:
    pos: str
    lists: dict[str, dict[str, Any]]
    rooms: dict[str, SlidingRoom]
    extensions: dict[str, Any]
    txn_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pos": self.pos, "lists": self.lists,
                               "rooms": {r: room.to_json() for r, room in self.rooms.items()},
                               "extensions": self.extensions}
        if self.txn_id is not None:
            out["txn_id"] = self.txn_id
        return out


@dataclass
class _Plan:
    """What one pass decided before reading what it needs."""

    token: SyncToken
    memberships: dict[str, Any]  # room id -> membership row
    windows: dict[str, RoomConfig]  # rooms in a range or subscribed -> their config
    lists_of_room: dict[str, set[str]]
    list_rooms: dict[str, tuple[tuple[str, ...], ...]]
    list_counts: dict[str, int]
    bumps: dict[str, int]
    unread: dict[str, RoomUnread]  # joined room -> unread counts (absent: none)

    def counts(self, room_id: str) -> tuple[int, int]:
        total = self.unread.get(room_id, EMPTY).total()
        return total.notifications, total.highlights


class SlidingSync:
    def __init__(self, builder: SyncBuilder) -> None:
        self._b = builder
        self.connections = Connections()
        self._room_types: dict[str, str | None] = {}  # from m.room.create: never changes
        self.parsed_requests: dict[bytes, SlidingRequest] = {}  # request body -> parsed
        # Equal list and extension configs of all connections share one object.
        self._interned: dict[Any, Any] = {}
        self._interned_configs: dict[Any, Config] = {}

    # --- the request -----------------------------------------------------------------
    async def sync(self, requester: Requester, pos: str | None, timeout_ms: int,
                   request: SlidingRequest) -> SlidingResult:
        connection, base = self.connections.resolve(
            requester.account_id, requester.device_id, request.conn_id, pos)
        self._configure(connection, request)
        b = self._b
        await b._load_cache()
        deadline = time.monotonic() + min(max(timeout_ms, 0), b.limits.max_sync_timeout_ms) / 1000
        joined = await self._joined(requester)
        with b.notifier.waiting(requester.user_id, joined) as waiter:
            del joined
            # The client's next long-poll right after a response: nothing new since
            # its snapshot and the same parameters (the common case, thousands of
            # times a second under load): it waits at once, without a pass that
            # would find nothing.  Checked after registering, so nothing is missed.
            quiet = base is not None and deadline > time.monotonic()
            while True:
                waiter.woken.clear()
                if quiet and base is not None and self._unchanged_since(connection, base):
                    quiet = False
                    if await waiter.wait(deadline - time.monotonic()):
                        waiter.update_rooms(await self._joined(requester))
                    else:
                        deadline = 0.0
                    continue
                quiet = False
                snapshot, result, news = await self._pass(requester, connection, base, request)
                remaining = deadline - time.monotonic()
                if news or base is None or remaining <= 0:
                    break
                # A waiting connection holds no response (thousands wait at once);
                # after the wait, woken or timed out, the next pass answers.
                del snapshot, result
                if await waiter.wait(remaining):
                    waiter.update_rooms(await self._joined(requester))
                else:
                    deadline = 0.0
        if base is not None and not news and snapshot.rooms == base.rooms \
                and snapshot.list_rooms == base.list_rooms:
            # Nothing the client lacks: the same pos again, no new snapshot to keep.
            serial = self.connections.serial_of(connection, base)
            result.pos = self.connections.pos(serial) if serial is not None \
                else self.connections.store(connection, snapshot)
        else:
            result.pos = self.connections.store(connection, snapshot)
        result.txn_id = request.txn_id
        return result

    async def _joined(self, requester: Requester) -> list[str]:
        rows = await self._b._memberships(requester.user_id)
        return [r.room_id for r in rows if r.membership == "join"]

    def _intern(self, value: Any) -> Any:
        if len(self._interned) >= MAX_ROOM_TYPES:
            self._interned.clear()
        return self._interned.setdefault(value, value)

    def _unchanged_since(self, connection: Connection, base: Snapshot) -> bool:
        """Whether a pass against ``base`` now would find nothing: no stream moved
        since it was made (events, account data, to-device, device lists, receipts,
        typing: all that changes rooms, lists, counts and extensions) and the
        connection's parameters are those it was made with."""
        return base.config is connection.config and self._cached_now() == base.token

    def _configure(self, connection: Connection, request: SlidingRequest) -> None:
        """The connection's sticky parameters after this request; equal parameters of
        all connections are one object (thousands of idle connections)."""
        lists = {name: self._intern(config.merged(connection.lists.get(name)))
                 for name, config in request.lists.items()}
        subscriptions = dict(connection.subscriptions)
        subscriptions.update(request.room_subscriptions)
        for room_id in request.unsubscribe_rooms:
            subscriptions.pop(room_id, None)
        extensions = {
            name: self._intern(config.merged(connection.extensions.get(name)))
            for name, config in {**connection.extensions, **request.extensions}.items()}
        key = (tuple(lists.items()), tuple(extensions.items()), tuple(subscriptions.items()))
        config = self._interned_configs.get(key)
        if config is None:
            if len(self._interned_configs) >= MAX_ROOM_TYPES:
                self._interned_configs.clear()
            config = self._interned_configs[key] = Config(lists, extensions, subscriptions)
        connection.config = config

    async def _pass(self, requester: Requester, connection: Connection, base: Snapshot | None,
                    request: SlidingRequest) -> tuple[Snapshot, SlidingResult, bool]:
        plan = await self._plan(requester, connection, base)
        rooms, sent = await self._rooms(requester, plan, base)
        extensions, ext_news = await self._extensions(requester, connection, plan, base, rooms)
        lists = {}
        for name, ranges in plan.list_rooms.items():
            config = connection.lists[name]
            lists[name] = {"count": plan.list_counts[name], "ops": [
                {"op": "SYNC", "range": [start, start + len(ids) - 1 if ids else start],
                 "room_ids": list(ids)}
                for (start, _end), ids in zip(config.ranges, ranges, strict=True) if ids]}
        news = bool(rooms) or ext_news or (
            base is not None and (plan.list_rooms != base.list_rooms
                                  or plan.list_counts != base.list_counts))
        snapshot = Snapshot(plan.token, sent, plan.list_rooms, plan.list_counts,
                            connection.config)
        return snapshot, SlidingResult("", lists, rooms, extensions), news

    # --- which rooms ------------------------------------------------------------------
    def _cached_now(self) -> SyncToken | None:
        """The streams' positions from the sync cache (None: it does not cover now)."""
        cache = self._b.cache
        if cache is None or not cache.ready:
            return None
        p = cache.positions
        return SyncToken(p["events"], p["account_data"], p["to_device"],
                         p["device_lists"], p["receipts"], self._b.typing.serial)

    async def _now(self) -> SyncToken:
        if (known := self._cached_now()) is not None:
            return known
        async with self._b.db.read() as session:
            return SyncToken(*await dm.stream_maxima(session), self._b.typing.serial)

    async def _plan(self, requester: Requester, connection: Connection,
                    base: Snapshot | None) -> _Plan:
        token = await self._now()
        rows = await self._b._memberships(requester.user_id)
        since = base.token.events if base is not None else None
        memberships = {}
        for row in rows:
            if row.forgotten:
                continue
            if row.membership in SHOWN:
                memberships[row.room_id] = row
            elif since is not None and row.stream_ordering > since \
                    and base is not None and row.room_id in base.rooms:
                memberships[row.room_id] = row  # left since: the client hears of it once
        bumps = await self._bump_stamps(memberships)
        for room_id, row in memberships.items():
            if row.membership != "join":  # an invite or a leave sorts by when it happened
                bumps[room_id] = row.stream_ordering
        order = sorted(memberships, key=lambda r: (-bumps.get(r, 0), r))
        windows: dict[str, RoomConfig] = {}
        lists_of_room: dict[str, set[str]] = {}
        list_rooms, list_counts = {}, {}
        facts = await self._list_facts(requester, connection, order)
        for name, config in connection.lists.items():
            members = [r for r in order if self._passes(config, memberships[r], facts, r)]
            list_counts[name] = len(members)
            ranges = []
            for start, end in config.ranges:
                ids = tuple(members[start:end + 1])
                ranges.append(ids)
                for room_id in ids:
                    windows[room_id] = windows.get(room_id, config.room).union(config.room) \
                        if room_id in windows else config.room
                    lists_of_room.setdefault(room_id, set()).add(name)
            list_rooms[name] = tuple(ranges)
        for room_id, subscribed in connection.subscriptions.items():
            if room_id in memberships:  # rooms the user may not see are ignored (MSC4186)
                windows[room_id] = windows[room_id].union(subscribed) if room_id in windows \
                    else subscribed
        unread = self._b.unread
        counts = await unread.load(requester.user_id, [
            r for r, row in memberships.items() if row.membership == "join"]) \
            if unread is not None else {}
        return _Plan(token, memberships, windows, lists_of_room, list_rooms, list_counts,
                     bumps, counts)

    async def _bump_stamps(self, memberships: dict[str, Any]) -> dict[str, int]:
        cache = self._b.cache
        out: dict[str, int] = {}
        missing = []
        for room_id, row in memberships.items():
            known = cache.bump_stamp(room_id) if cache is not None else None
            if known is None and row.membership == "join":
                missing.append(room_id)
            elif known is not None:
                out[room_id] = known
        if missing:
            async with self._b.db.read() as session:
                read = await room_lists.bump_stamps(session, missing)
            if cache is not None:
                cache.remember_bump_stamps(read)
            out.update(read)
        return out

    async def _list_facts(self, requester: Requester, connection: Connection,
                          rooms: list[str]) -> dict[str, Any]:
        """What the lists' filters need, read only when a filter asks for it."""
        wanted = set()
        for config in connection.lists.values():
            f = config.filters
            if f.is_dm is not None:
                wanted.add("dm")
            if f.tags is not None or f.not_tags:
                wanted.add("tags")
            if f.room_types is not None or f.not_room_types:
                wanted.add("types")
            if f.is_encrypted is not None:
                wanted.add("encrypted")
            if f.spaces is not None:
                wanted.add("spaces")
        facts: dict[str, Any] = {}
        if not wanted:
            return facts
        async with self._b.db.read() as session:
            if "dm" in wanted:
                facts["dm"] = await self._dm_rooms(session, requester)
            if "tags" in wanted:
                facts["tags"] = {}
                for room_id in rooms:
                    tags = await user_data.get_account_data(session, requester.account_id,
                                                            room_id, "m.tag")
                    if isinstance(tags, dict) and isinstance(tags.get("tags"), dict):
                        facts["tags"][room_id] = set(tags["tags"])
            if "types" in wanted:
                unknown = [r for r in rooms if r not in self._room_types]
                if unknown:
                    if len(self._room_types) > MAX_ROOM_TYPES:
                        self._room_types.clear()
                    for room_id, content in (await room_lists.create_contents(
                            session, unknown)).items():
                        kind = content.get("type")
                        self._room_types[room_id] = kind if isinstance(kind, str) else None
                facts["types"] = self._room_types
            if "encrypted" in wanted:
                state = await room_lists.current_state(session, rooms,
                                                       ["m.room.encryption"], ())
                facts["encrypted"] = set(state)
            if "spaces" in wanted:
                spaces = set().union(*(c.filters.spaces or () for c in
                                       connection.lists.values()))
                children: dict[str, set[str]] = {}
                state = await room_lists.current_state(session, spaces, ["m.space.child"], ())
                for space_id, entries in state.items():
                    for (_type, child), event in entries.items():
                        if event.pdu.get("content", {}).get("via"):
                            children.setdefault(space_id, set()).add(child)
                facts["spaces"] = children
        return facts

    async def _dm_rooms(self, session: AsyncSession, requester: Requester) -> set[str]:
        direct = await user_data.get_account_data(session, requester.account_id, "",
                                                  "m.direct")
        out: set[str] = set()
        if isinstance(direct, dict):
            for rooms in direct.values():
                if isinstance(rooms, list):
                    out.update(r for r in rooms if isinstance(r, str))
        return out

    @staticmethod
    def _passes(config: ListConfig, row: Any, facts: dict[str, Any], room_id: str) -> bool:
        f = config.filters
        if f.is_invite is not None and (row.membership == "invite") != f.is_invite:
            return False
        if f.is_dm is not None and (room_id in facts["dm"]) != f.is_dm:
            return False
        if f.is_encrypted is not None and (room_id in facts["encrypted"]) != f.is_encrypted:
            return False
        if "types" in facts:
            kind = facts["types"].get(room_id)
            if f.room_types is not None and kind not in f.room_types:
                return False
            if kind in f.not_room_types:
                return False
        if "tags" in facts:
            tags = facts["tags"].get(room_id, set())
            if f.tags is not None and not tags & f.tags:
                return False
            if tags & f.not_tags:
                return False
        return f.spaces is None or any(room_id in facts["spaces"].get(s, ())
                                       for s in f.spaces)

    # --- what each room needs ------------------------------------------------------
    async def _rooms(self, requester: Requester, plan: _Plan, base: Snapshot | None,
                     ) -> tuple[dict[str, SlidingRoom], dict[str, SentRoom]]:
        sent = dict(base.rooms) if base is not None else {}
        out: dict[str, SlidingRoom] = {}
        initial, updates = [], []
        for room_id, config in plan.windows.items():
            row = plan.memberships[room_id]
            before = sent.get(room_id)
            if row.membership in ("leave", "ban"):
                if before is not None and before.membership != row.membership:
                    updates.append(room_id)
            elif before is None or before.membership != row.membership \
                    or before.config != config:
                initial.append(room_id)
            elif row.membership == "invite":
                # An invited user sees the invite's stripped state, never the room's
                # events (nor would an app keep it an invite: matrix-rust-sdk takes a
                # room entry without invite_state for a joined room).
                if row.stream_ordering > before.position:
                    initial.append(room_id)  # invited again since
            elif plan.bumps.get(room_id, 0) > before.position \
                    or self._has_events_after(room_id, before.position):
                updates.append(room_id)
            elif row.membership == "join" and plan.counts(room_id) != before.counts:
                # Only the counts moved (a read receipt): the room with its new counts.
                out[room_id] = SlidingRoom(bump_stamp=plan.bumps.get(room_id))
        # Rooms out of every window stay with the client as they were (MSC4186):
        # their snapshot entry stays too, so they come back incrementally.
        if initial or updates:
            await self._changed_rooms(requester, plan, base, initial, updates, out, sent)
        for room_id, room in out.items():
            if plan.memberships[room_id].membership != "join":
                continue
            counts = plan.counts(room_id)
            room.notification_count, room.highlight_count = counts
            if room_id in sent and sent[room_id].counts != counts:
                sent[room_id] = dataclasses.replace(sent[room_id], counts=counts)
        return out, sent

    async def _changed_rooms(self, requester: Requester, plan: _Plan, base: Snapshot | None,
                             initial: list[str], updates: list[str],
                             out: dict[str, SlidingRoom], sent: dict[str, SentRoom]) -> None:
        """The rooms the client lacks, or lacks events of."""
        lazy_added: dict[str, frozenset[str]] = {}
        cached = self._cached_updates(requester, plan, base, updates, lazy_added) \
            if base is not None else {}
        for room_id, room in cached.items():
            out[room_id] = room
        need_db = initial or [r for r in updates if r not in cached]
        if need_db:
            async with self._b._building, self._b.db.read() as session:
                await self._initial_rooms(session, requester, plan, initial, out, sent)
                await self._updated_rooms(session, requester, plan, base,
                                          [r for r in updates if r not in cached],
                                          out, sent)
        for room_id in cached:
            row = plan.memberships[room_id]
            before = sent[room_id]
            sent[room_id] = SentRoom(plan.token.events, row.membership, before.config,
                                     before.lazy_members | lazy_added.get(room_id, frozenset()),
                                     before.counts)

    def _has_events_after(self, room_id: str, position: int) -> bool:
        """Events in the room after ``position`` (any type): from the cache, or True
        when it cannot tell (the database then looks)."""
        cache = self._b.cache
        if cache is None:
            return True
        events = cache.room_events_since(room_id, position)
        return events is None or bool(events)

    def _cached_updates(self, requester: Requester, plan: _Plan, base: Snapshot,
                        room_ids: list[str], lazy: dict[str, frozenset[str]],
                        ) -> dict[str, SlidingRoom]:
        """Incremental room updates made from the sync cache: only message-like
        events (no state, which may change names, counts or required_state), no gap."""
        cache = self._b.cache
        out: dict[str, SlidingRoom] = {}
        if cache is None or not cache.ready:
            return out
        now_ms = int(time.time() * 1000)
        who = (requester.user_id, requester.account_id, requester.device_id)
        for room_id in room_ids:
            row = plan.memberships[room_id]
            before = base.rooms[room_id]
            if row.membership != "join":
                continue
            events = cache.room_events_since(room_id, before.position)
            config = plan.windows[room_id]
            if events is None:
                continue
            # Events stored after this pass read its token come with the next pass.
            events = [e for e in events if e.event.stream_ordering <= plan.token.events]
            if any(e.event.state_key is not None for e in events):
                continue  # state (names, counts, required_state): the database path
            # More than the limit (a client that fell behind under load): the newest,
            # limited, as the database path sends them, without its dozen reads.
            limited = len(events) > config.timeline_limit
            if limited:
                events = events[len(events) - config.timeline_limit:] \
                    if config.timeline_limit else []
            if relates_within(events):
                continue  # bundled aggregations: the database path
            new_members = []
            if config.required_state.lazy:
                senders = {e.event.sender for e in events} - before.lazy_members
                new_members = [cache.member_event(room_id, u) for u in sorted(senders)]
                if None in new_members:
                    continue  # a new sender's member event the cache lacks: database
            room = SlidingRoom(bump_stamp=plan.bumps.get(room_id))
            if new_members:
                room.required_state = [
                    client_event(m.pdu, now_ms=now_ms, include_room_id=False)  # type: ignore[union-attr]
                    for m in new_members]
                lazy[room_id] = frozenset(m.state_key for m in new_members)  # type: ignore[union-attr,misc]
            if events or limited:
                room.timeline = [e.render(*who, now_ms) for e in events]
                room.limited = limited
                room.num_live = len(events)
                room.prev_batch = room_token(events[0].event.stream_ordering - 1 if events
                                             else plan.token.events)
            out[room_id] = room
        return out

    async def _initial_rooms(self, session: AsyncSession, requester: Requester, plan: _Plan,
                             room_ids: list[str], out: dict[str, SlidingRoom],
                             sent: dict[str, SentRoom]) -> None:
        if not room_ids:
            return
        me = requester.user_id
        joined = [r for r in room_ids if plan.memberships[r].membership == "join"]
        invited = [r for r in room_ids if plan.memberships[r].membership == "invite"]
        for room_id in invited:
            out[room_id] = await self._invited_room(session, plan, room_id)
            sent[room_id] = SentRoom(plan.token.events, "invite", plan.windows[room_id])
        if not joined:
            return
        by_limit: dict[int, list[str]] = {}
        for room_id in joined:
            by_limit.setdefault(plan.windows[room_id].timeline_limit, []).append(room_id)
        timelines: dict[str, list[StoredEvent]] = {}
        for limit, ids in by_limit.items():
            timelines.update(await room_lists.latest_events(session, ids, limit + 1,
                                                            plan.token.events))
        members = await room_lists.members(session, joined)
        heroes = {r: [u for u, _m, _e in members.get(r, []) if u != me][:MAX_HEROES]
                  for r in joined}
        cache = self._b.cache
        if cache is not None:
            cache.track_members(joined)
        state = await self._state(session, me, joined, plan, timelines, heroes)
        if cache is not None:
            for room_id, room_state in state.items():
                cache.remember_member_events(room_id, room_state.values())
        # The heroes' member events are in the state just read (``_state`` asks for
        # them); read apart only one the membership rows name differently (a
        # membership row and the room state out of step: the row's event counts).
        hero_ids = [e for r in joined for u, _m, e in members.get(r, []) if u in heroes[r]]
        hero_events = {e.event_id: e for room_state in state.values()
                       for (t, _k), e in room_state.items() if t == "m.room.member"}
        missing = [e for e in hero_ids if e not in hero_events]
        if missing:
            hero_events.update(await store.get_events(session, missing))
        to_render: list[tuple[SlidingRoom, list[StoredEvent], list[StoredEvent]]] = []
        for room_id in joined:
            config = plan.windows[room_id]
            events = timelines.get(room_id, [])
            limited = len(events) > config.timeline_limit
            # A room with fewer events than the limit comes whole (a negative start
            # would cut it and still say "not limited").
            events = events[-config.timeline_limit:] if config.timeline_limit \
                else []
            room_state = state.get(room_id, {})
            lazy = frozenset(e.sender for e in events) if config.required_state.lazy \
                else frozenset()
            wanted = [e for (t, k), e in room_state.items()
                      if config.required_state.wants(t, k, me, lazy)]
            room = SlidingRoom(bump_stamp=plan.bumps.get(room_id), initial=True)
            self._describe(room, room_state, members.get(room_id, []), heroes[room_id],
                           hero_events)
            wanted.sort(key=lambda e: e.stream_ordering)
            to_render.append((room, wanted, events))
            room.limited = limited
            room.num_live = 0
            start = events[0].stream_ordering - 1 if events else plan.token.events
            room.prev_batch = room_token(start)
            out[room_id] = room
            sent[room_id] = SentRoom(plan.token.events, "join", config, lazy)
        # One render for all rooms: its queries (transaction ids, redactions, the
        # bundled relations of threads, edits, reactions) run once per response.
        rendered = await render_events(session, requester, [
            e for _room, state_events, events in to_render for e in state_events + events],
            include_room_id=False)
        at = 0
        for room, state_events, events in to_render:
            room.required_state = rendered[at:at + len(state_events)]
            at += len(state_events)
            room.timeline = rendered[at:at + len(events)]
            at += len(events)

    async def _state(self, session: AsyncSession, me: str, room_ids: list[str], plan: _Plan,
                     timelines: dict[str, list[StoredEvent]], heroes: dict[str, list[str]],
                     ) -> dict[str, dict[tuple[str, str], StoredEvent]]:
        """The current state the rooms' required_state and descriptions need."""
        types: set[str] | None = {"m.room.name", "m.room.avatar", "m.room.canonical_alias"}
        member_keys: set[str] | None = {me}
        for room_id in room_ids:
            config = plan.windows[room_id]
            member_keys.update(heroes[room_id]) if member_keys is not None else None
            if config.required_state.lazy and member_keys is not None:
                member_keys.update(e.sender for e in timelines.get(room_id, []))
            for event_type, state_key in config.required_state.include:
                if event_type == WILDCARD:
                    types = None
                    if state_key == WILDCARD:
                        member_keys = None
                elif event_type == "m.room.member":
                    if state_key == WILDCARD:
                        member_keys = None
                    elif member_keys is not None and not state_key.startswith("$"):
                        member_keys.add(state_key)
                elif types is not None:
                    types.add(event_type)
        return await room_lists.current_state(session, room_ids, types, member_keys)

    @staticmethod
    def _describe(room: SlidingRoom, state: dict[tuple[str, str], StoredEvent],
                  members: list[tuple[str, str, str]], heroes: list[str],
                  hero_events: dict[str, StoredEvent]) -> None:
        """Name, avatar, member counts and heroes (MSC4186 room fields)."""
        name = state.get(("m.room.name", ""))
        if name is not None and isinstance(name.pdu.get("content", {}).get("name"), str) \
                and name.pdu["content"]["name"]:
            room.name = name.pdu["content"]["name"]
        avatar = state.get(("m.room.avatar", ""))
        if avatar is not None and isinstance(avatar.pdu.get("content", {}).get("url"), str):
            room.avatar = avatar.pdu["content"]["url"]
        room.joined_count = sum(1 for _u, m, _e in members if m == "join")
        room.invited_count = sum(1 for _u, m, _e in members if m == "invite")
        by_user = {u: e for u, _m, e in members}
        out = []
        for user_id in heroes:
            hero: dict[str, Any] = {"user_id": user_id}
            event = hero_events.get(by_user.get(user_id, ""))
            content = event.pdu.get("content", {}) if event is not None else {}
            if isinstance(content.get("displayname"), str):
                hero["displayname"] = content["displayname"]
            if isinstance(content.get("avatar_url"), str):
                hero["avatar_url"] = content["avatar_url"]
            out.append(hero)
        room.heroes = out

    async def _invited_room(self, session: AsyncSession, plan: _Plan,
                            room_id: str) -> SlidingRoom:
        row = plan.memberships[room_id]
        state = await store.current_state(session, room_id,
                                          [(t, "") for t in INVITE_STATE_KEYS])
        events = [stripped_state(e.pdu) for e in state.values()]
        invite = await store.get_event(session, row.event_id)
        if invite is not None:
            events.append(stripped_state(invite.pdu))
        room = SlidingRoom(bump_stamp=row.stream_ordering, initial=True, invite_state=events)
        name = state.get(("m.room.name", ""))
        if name is not None and isinstance(name.pdu.get("content", {}).get("name"), str):
            room.name = name.pdu["content"]["name"]
        return room

    async def _updated_rooms(self, session: AsyncSession, requester: Requester, plan: _Plan,
                             base: Snapshot | None, room_ids: list[str],
                             out: dict[str, SlidingRoom], sent: dict[str, SentRoom]) -> None:
        """Rooms the client has: the events since, the state that changed since."""
        me = requester.user_id
        for room_id in room_ids:
            assert base is not None
            before = base.rooms[room_id]
            row = plan.memberships[room_id]
            config = plan.windows[room_id]
            left = row.membership in ("leave", "ban")
            if left and before.membership != "join":
                # An invite declined or withdrawn: the leave alone, not the events
                # the user was never in the room for.
                out[room_id] = await self._leave_only(session, requester, plan, room_id)
                sent.pop(room_id, None)
                continue
            upto = row.stream_ordering if left else plan.token.events
            limit = config.timeline_limit
            newest = await store.room_events(session, room_id, after=before.position,
                                             upto=upto, limit=limit + 1, newest_first=True)
            limited = len(newest) > limit
            events = list(reversed(newest[:limit]))
            changed = await room_lists.state_changed_since(session, room_id, before.position,
                                                           upto)
            lazy = set(before.lazy_members)
            new_senders = {e.sender for e in events} - lazy if config.required_state.lazy \
                else set()
            # A state change goes in required_state even when the timeline has it
            # too: matrix-rust-sdk takes a room's state from required_state only
            # (and finds its own leave there), as Synapse sends it.
            wanted = [e for e in changed
                      if config.required_state.wants(e.type, e.state_key or "", me)]
            if new_senders:
                cache = self._b.cache
                if cache is not None:
                    cache.track_members([room_id])
                members = await store.current_state(
                    session, room_id, [("m.room.member", u) for u in sorted(new_senders)])
                if cache is not None:
                    cache.remember_member_events(room_id, members.values())
                known = {e.event_id for e in wanted}
                wanted += [e for e in members.values() if e.event_id not in known]
                lazy |= new_senders
            if left and not any(e.event_id == row.event_id for e in wanted):
                leave = await store.get_event(session, row.event_id)
                if leave is not None:
                    wanted.append(leave)
            room = SlidingRoom(bump_stamp=plan.bumps.get(room_id))
            if events or limited:
                room.timeline = await render_events(session, requester, events,
                                                    include_room_id=False)
                room.limited = limited
                room.num_live = len(events)
                start = events[0].stream_ordering - 1 if events else upto
                room.prev_batch = room_token(start)
            if wanted:
                wanted.sort(key=lambda e: e.stream_ordering)
                room.required_state = await render_events(session, requester, wanted,
                                                          include_room_id=False)
            if any(e.type in ("m.room.member", "m.room.name", "m.room.avatar")
                   for e in changed):
                room_members = (await room_lists.members(session, [room_id])).get(room_id, [])
                heroes = [u for u, _m, _e in room_members if u != me][:MAX_HEROES]
                state = await store.current_state(session, room_id,
                                                  [("m.room.name", ""), ("m.room.avatar", "")])
                hero_events = await store.get_events(
                    session, [e for u, _m, e in room_members if u in heroes])
                self._describe(room, state, room_members, heroes, hero_events)
            out[room_id] = room
            if left:
                sent.pop(room_id, None)  # a rejoin starts the room afresh
            else:
                sent[room_id] = SentRoom(plan.token.events, row.membership, config,
                                         frozenset(lazy))

    async def _leave_only(self, session: AsyncSession, requester: Requester, plan: _Plan,
                          room_id: str) -> SlidingRoom:
        room = SlidingRoom(bump_stamp=plan.bumps.get(room_id))
        leave = await store.get_event(session, plan.memberships[room_id].event_id)
        if leave is not None:
            room.timeline = room.required_state = await render_events(
                session, requester, [leave], include_room_id=False)
            room.limited = False
            room.num_live = 1
        return room

    # --- extensions -----------------------------------------------------------------
    async def _extensions(self, requester: Requester, connection: Connection, plan: _Plan,
                          base: Snapshot | None, rooms: dict[str, SlidingRoom],
                          ) -> tuple[dict[str, Any], bool]:
        ext = connection.extensions
        out: dict[str, Any] = {}
        news = False
        since = base.token if base is not None else None
        now = plan.token
        covered = [r for r in plan.windows if plan.memberships[r].membership == "join"]

        def rooms_for(config: ExtensionConfig) -> list[str]:
            return [r for r in covered if config.covers(r, plan.lists_of_room.get(r, set()))]

        if (config := ext.get("to_device")) is not None and config.on:
            out["to_device"], moved = await self._to_device(requester, config, now)
            news |= moved
        if (config := ext.get("e2ee")) is not None and config.on:
            out["e2ee"] = await self._e2ee(requester, since, now)
            news |= bool(out["e2ee"]["device_lists"]["changed"]
                         or out["e2ee"]["device_lists"]["left"])
        if (config := ext.get("account_data")) is not None and config.on:
            data = await self._account_data(requester, since, now, rooms_for(config), rooms)
            out["account_data"] = data
            news |= bool(data["global"] or data["rooms"])
        if (config := ext.get("receipts")) is not None and config.on:
            receipts = await self._receipts(rooms_for(config), since, now, rooms)
            out["receipts"] = {"rooms": receipts}
            news |= bool(receipts)
        if (config := ext.get("typing")) is not None and config.on:
            typing: dict[str, Any] = {}
            wanted = rooms_for(config)
            fresh = [r for r in wanted if rooms.get(r) is not None and rooms[r].initial]
            typing.update(engine.typing_changes(self._b.typing, fresh, None))
            typing.update(engine.typing_changes(
                self._b.typing, [r for r in wanted if r not in fresh],
                since.typing if since else None))
            out["typing"] = {"rooms": typing}
            news |= bool(typing)
        return out, news

    async def _to_device(self, requester: Requester, config: ExtensionConfig,
                         now: SyncToken) -> tuple[dict[str, Any], bool]:
        """MSC3885 to-device extension: its own ``since``/``next_batch``; a ``since``
        acknowledges (deletes) what came before it (spec 11.11.3)."""
        after = 0
        if config.since is not None:
            since = config.since
            if not (since.isascii() and since.isdigit() and len(since) <= 18):
                raise InvalidRequest("extensions.to_device.since is not a next_batch "
                                     "this server handed out")
            after = int(since)
            await self._b._acknowledge_to_device(requester, after)
        if after > now.to_device:
            after = 0  # a position from a reset database: everything pending
        if now.to_device <= after:
            return {"next_batch": str(after), "events": []}, False
        async with self._b.db.read() as session:
            events, reached = await engine.to_device_between(
                session, requester, after, now.to_device,
                config.limit or DEFAULT_TO_DEVICE_LIMIT)
        return {"next_batch": str(reached), "events": events}, bool(events)

    async def _e2ee(self, requester: Requester, since: SyncToken | None,
                    now: SyncToken) -> dict[str, Any]:
        b = self._b
        cache = b.cache
        counts = cache.key_counts(requester.account_id, requester.device_id) \
            if cache is not None else None
        changed: set[str] = set()
        if counts is None or (since is not None and now.device_lists > since.device_lists):
            async with b.db.read() as session:
                if counts is None:
                    generation = cache.key_generation if cache is not None else 0
                    counts = await user_data.key_counts(session, requester.account_id,
                                                        requester.device_id)
                    if cache is not None:
                        cache.remember_key_counts(requester.account_id, requester.device_id,
                                                  counts, generation)
                if since is not None:
                    changed = await engine.changed_devices(session, requester,
                                                           since.device_lists,
                                                           now.device_lists)
        left: set[str] = set()
        if since is not None and await self._member_events_since(requester, since.events):
            async with b.db.read() as session:
                joined, left = await engine.membership_device_changes(
                    session, requester, since.events, now.events)
            changed |= joined
        key_counts, fallback = engine.key_counts_with_default(counts)
        return {"device_lists": {"changed": sorted(changed), "left": sorted(left)},
                "device_one_time_keys_count": key_counts,
                "device_unused_fallback_key_types": fallback}

    async def _member_events_since(self, requester: Requester, position: int) -> bool:
        """Whether a member event may have come in the user's rooms after ``position``
        (the sync cache knows without the database; unsure means yes)."""
        cache = self._b.cache
        if cache is None or not cache.ready:
            return True
        for row in await self._b._memberships(requester.user_id):
            events = cache.room_events_since(row.room_id, position)
            if events is None or any(e.event.type == "m.room.member" for e in events):
                return True
        return False

    async def _account_data(self, requester: Requester, since: SyncToken | None,
                            now: SyncToken, room_ids: list[str],
                            rooms: dict[str, SlidingRoom]) -> dict[str, Any]:
        """Global account data and that of the covered rooms, changed since the
        snapshot; a room the client gets for the first time gets all of its own."""
        out: dict[str, Any] = {"global": [], "rooms": {}}
        after = since.account_data if since is not None else 0
        wanted = set(room_ids)
        fresh = {r for r in wanted if rooms.get(r) is not None and rooms[r].initial} \
            if since is not None else set()
        if now.account_data <= after and not fresh:
            return out
        async with self._b.db.read() as session:
            global_data, room_data = await engine.account_data_between(
                session, requester, after, now.account_data)
            if fresh:  # all of a fresh room's own account data, not just what changed
                _global, every = await engine.account_data_between(session, requester, 0,
                                                                   now.account_data)
                room_data.update({r: every[r] for r in fresh if r in every})
        out["global"] = global_data
        out["rooms"] = {r: items for r, items in room_data.items() if r in wanted}
        return out

    async def _receipts(self, room_ids: list[str], since: SyncToken | None, now: SyncToken,
                        rooms: dict[str, SlidingRoom]) -> dict[str, Any]:
        fresh = [r for r in room_ids if rooms.get(r) is not None and rooms[r].initial]
        rest = [r for r in room_ids if r not in set(fresh)]
        after = since.receipts if since is not None else 0
        out: dict[str, Any] = {}
        reads: list[tuple[Iterable[str], int]] = []
        if fresh:
            reads.append((fresh, 0))
        if rest and now.receipts > after:
            reads.append((rest, after))
        if not reads:
            return out
        async with self._b.db.read() as session:
            for ids, start in reads:
                out.update(await engine.receipts_between(session, ids, start, now.receipts))
        return out
