"""Unread notification and highlight counts (spec: Client-Server API 13.13
"Push Notifications", 8.1 "unread_notifications", 11.6.2.3 threaded receipts
and ``unread_thread_notifications``).

When an event is stored, each local user joined to its room (and the invitee
of an invite) gets the actions of their push rules for it
(messenger.push_evaluator), evaluated once, inside the event's transaction
(``event_stored``, the room writer's hook): a notifying event becomes a row of
``matrix_push_actions`` for the user, in its thread.  After the commit the
same result goes to the push sender (``committed``), so counts, pushes and
/notifications never disagree.

Counts are the rows no read receipt reaches.  /sync and sliding sync read them
from memory: per user, the counts of their joined rooms, loaded from the
database once (up to a stream position) and then raised by each committed
event after that position.  A receipt, a membership change or another
process's write drops what memory holds, and the next read loads afresh.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import Database
from messenger.push_defaults import default_push_rules
from messenger.push_evaluator import (
    CompiledRuleset,
    EventFacts,
    Matcher,
    compile_ruleset,
    thread_of,
)
from messenger.push_ruleset import effective_ruleset
from messenger.rooms.power import power_levels
from messenger.storage import events as store
from messenger.storage import push_actions
from messenger.storage.events import StoredEvent
from messenger.storage.push_actions import Notified

StateMap = Mapping[tuple[str, str], Mapping[str, Any]]
RULES_TTL_SECONDS = 60.0  # another process may edit a ruleset: read it again by then
MAX_USERS = 100_000
MAX_PENDING = 10_000  # evaluated events whose commit is still to come (or failed)


@dataclass(frozen=True)
class Counts:
    notifications: int = 0
    highlights: int = 0


ZERO = Counts()


@dataclass
class RoomUnread:
    """A room's unread counts per thread (``main``: the main timeline)."""

    threads: dict[str, list[int]] = field(default_factory=dict)  # thread -> [notif, hl]

    def total(self) -> Counts:
        return Counts(sum(n for n, _h in self.threads.values()),
                      sum(h for _n, h in self.threads.values()))

    def main(self) -> Counts:
        n, h = self.threads.get("main", (0, 0))
        return Counts(n, h)

    def per_thread(self) -> dict[str, Counts]:
        return {t: Counts(n, h) for t, (n, h) in self.threads.items() if t != "main" and n}

    def add(self, thread_id: str, highlight: bool) -> None:
        counts = self.threads.setdefault(thread_id, [0, 0])
        counts[0] += 1
        counts[1] += int(highlight)


EMPTY = RoomUnread()


@dataclass
class _Loaded:
    upto: int  # events at or before it are in ``rooms``; later ones are added on commit
    rooms: dict[str, RoomUnread]  # joined rooms at the load with anything unread


def room_facts(event: StoredEvent, state: StateMap) -> tuple[EventFacts, list[str]]:
    """The event's facts from the room state before it, and the joined members."""
    joined = [key for (kind, key), pdu in state.items() if kind == "m.room.member"
              and (pdu.get("content") or {}).get("membership") == "join"]
    levels = power_levels(state)
    content = (state.get(("m.room.power_levels", "")) or {}).get("content") or {}
    notifications = content.get("notifications")
    wanted = {k: v for k, v in notifications.items()
              if isinstance(v, int) and not isinstance(v, bool)} \
        if isinstance(notifications, Mapping) else {}
    return EventFacts(event.pdu, len(joined), levels.user_level(event.sender), wanted), joined


def display_name(state: StateMap, user_id: str) -> str | None:
    member = state.get(("m.room.member", user_id))
    name = (member.get("content") or {}).get("displayname") if member is not None else None
    return name if isinstance(name, str) else None


class UnreadCounts:
    def __init__(self, db: Database, server_name: str, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._suffix = f":{server_name}"
        self._clock = clock
        # user -> (until, compiled ruleset): compiled once, shared by every event
        self._rules: dict[str, tuple[float, CompiledRuleset]] = {}
        self._pending: OrderedDict[str, list[Notified]] = OrderedDict()
        self._loaded: dict[str, _Loaded] = {}
        self._loading: dict[str, object] = {}  # user -> token of the load under way

    # --- the write path --------------------------------------------------------------
    async def event_stored(self, session: AsyncSession, event: StoredEvent,
                           state: StateMap) -> None:
        """The room writer's hook, in the event's transaction; ``state``: the room's
        state before the event."""
        notified = await self.evaluate(session, event, state)
        if notified:
            await push_actions.add(session, event, notified)
            self._pending[event.event_id] = notified
            if len(self._pending) > MAX_PENDING:
                self._pending.popitem(last=False)

    async def evaluate(self, session: AsyncSession, event: StoredEvent,
                       state: StateMap) -> list[Notified]:
        """Who the event notifies (local users but the sender), per their rules."""
        facts, joined = room_facts(event, state)
        users = [u for u in joined if u != event.sender and u.endswith(self._suffix)]
        if event.type == "m.room.member" and event.state_key \
                and event.state_key.endswith(self._suffix) \
                and event.state_key != event.sender and event.state_key not in users \
                and (event.pdu.get("content") or {}).get("membership") == "invite":
            users.append(event.state_key)
        if not users:
            return []
        rulesets = await self._rulesets(session, users)
        thread = thread_of(event.pdu)
        matcher = Matcher(facts)  # each condition worked out once for all the users
        out = []
        for user_id in users:
            actions = matcher.evaluate(rulesets[user_id], display_name(state, user_id))
            if actions.notify:
                out.append(Notified(user_id, thread, actions.highlight))
        return out

    async def _rulesets(self, session: AsyncSession,
                        users: list[str]) -> dict[str, CompiledRuleset]:
        now = self._clock()
        out: dict[str, CompiledRuleset] = {}
        missing = []
        for user_id in users:
            known = self._rules.get(user_id)
            if known is not None and known[0] > now:
                out[user_id] = known[1]
            else:
                missing.append(user_id)
        if missing:
            stored = await push_actions.push_rules_of(
                session, [u[1:-len(self._suffix)] for u in missing])
            if len(self._rules) + len(missing) > MAX_USERS:
                self._rules.clear()
            for user_id in missing:
                ruleset = compile_ruleset(effective_ruleset(
                    stored.get(user_id[1:-len(self._suffix)]), default_push_rules(user_id)))
                self._rules[user_id] = (now + RULES_TTL_SECONDS, ruleset)
                out[user_id] = ruleset
        return out

    def committed(self, events: Iterable[StoredEvent]) -> dict[str, list[Notified]]:
        """After the commit (in stream order, before /sync runs): the counts in
        memory grow; event id -> who it notified, for the push sender."""
        out: dict[str, list[Notified]] = {}
        for event in events:
            if event.type == "m.room.member" and event.state_key:
                self._forget(event.state_key)  # joined rooms changed: load afresh
            notified = self._pending.pop(event.event_id, None)
            if not notified:
                continue
            out[event.event_id] = notified
            for n in notified:
                loaded = self._loaded.get(n.user_id)
                if loaded is None and n.user_id in self._loading:
                    self._loading[n.user_id] = None  # its load may have read before this
                elif loaded is not None and event.stream_ordering > loaded.upto:
                    loaded.rooms.setdefault(event.room_id, RoomUnread()).add(
                        n.thread_id, n.highlight)
        return out

    # --- what changes the counts besides events ----------------------------------------
    def _forget(self, user_id: str) -> None:
        self._loaded.pop(user_id, None)
        if user_id in self._loading:
            self._loading[user_id] = None  # a load under way may have read too early

    def receipt_changed(self, user_id: str) -> None:
        """A read receipt of the user was stored: their counts are read again."""
        self._forget(user_id)

    def rules_changed(self, user_id: str) -> None:
        """The user's push rules changed: the next event reads them."""
        self._rules.pop(user_id, None)

    def reset(self) -> None:
        """Another process wrote events: nothing in memory is sure."""
        self._loaded.clear()
        for user_id in self._loading:
            self._loading[user_id] = None
        self._rules.clear()

    # --- readers ------------------------------------------------------------------
    def cached(self, user_id: str) -> dict[str, RoomUnread] | None:
        """room -> counts (rooms with nothing unread left out), or None if not loaded."""
        loaded = self._loaded.get(user_id)
        return loaded.rooms if loaded is not None else None

    async def load(self, user_id: str, joined: Iterable[str]) -> dict[str, RoomUnread]:
        """The counts of the user's joined rooms, from memory or the database."""
        known = self.cached(user_id)
        if known is not None:
            return known
        token = object()
        self._loading[user_id] = token
        try:
            async with self._db.read() as session:
                upto = await store.max_stream_ordering(session)
                rows = await push_actions.unread(session, user_id, joined, upto)
        finally:
            current = self._loading.pop(user_id, None)
        rooms: dict[str, RoomUnread] = {}
        for room_id, thread_id, highlight in rows:
            rooms.setdefault(room_id, RoomUnread()).add(thread_id, highlight)
        if current is token:
            if len(self._loaded) >= MAX_USERS:
                self._loaded.clear()
            self._loaded[user_id] = _Loaded(upto, rooms)
        return rooms

    async def badge(self, user_id: str) -> int:
        """The push badge: how many joined rooms have unread notifications (as
        Synapse counts it by default)."""
        async with self._db.read() as session:
            rows = await store.memberships_of(session, user_id)
        rooms = await self.load(user_id, [r.room_id for r in rows if r.membership == "join"])
        return sum(1 for room in rooms.values() if room.total().notifications)
