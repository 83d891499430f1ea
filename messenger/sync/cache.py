"""The in-memory view of recent activity that lets /sync answer without the database
(spec: Client-Server API 8.1 "Syncing"; the cache only changes *how* an
incremental sync is built, never what it contains).

One ``SyncCache`` per server instance holds:

* the newest position of every sync stream (events, account data, to-device,
  device lists, receipts), advanced by this process's writers after they commit
  and by ``catch_up`` when another process (``schulhof rooms post``) wrote;
* per room, a ring of its recent events, each rendered for clients once;
* per user, their memberships (dropped on every membership event of theirs);
* per device, its one-time key counts (dropped on upload, claim and login);
* per room, its bump stamp (sliding sync's recency order), where known.

Coverage: every event with ``base < position <= positions["events"]`` is in
its room's ring unless the ring dropped it, in which case the ring's ``floor``
says up to where.  A sync whose ``since`` is not covered falls back to the
database, as does anything else the cache does not hold (initial syncs, limited
timelines, new joins, invites, leaves, other streams that moved).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from messenger import jsonenc
from messenger.events.client_format import client_event
from messenger.storage.events import StoredEvent
from messenger.storage.room_lists import BUMP_EVENT_TYPES

STREAMS = ("events", "account_data", "to_device", "device_lists", "receipts")
RING_SIZE = 100  # events per room: far more than an up-to-date client lags behind
MAX_EVENTS = 50_000  # all rings together; the least recently active room goes first
MAX_USERS = 100_000  # membership and key-count entries before they are dropped wholesale


@dataclass(frozen=True)
class CachedMembership:
    """The fields of ``MembershipRow`` that /sync reads."""

    room_id: str
    membership: str
    stream_ordering: int
    event_id: str
    forgotten: bool


@dataclass(eq=False)
class CachedEvent:
    """An event with its client form (spec 9.1 ClientEvent) computed once."""

    event: StoredEvent
    client: dict[str, Any]  # without room_id and unsigned
    head: bytes | None  # ``client`` encoded, without its closing brace
    txn: tuple[int, str, str] | None  # (account, device, transaction id) of the sender
    redaction: StoredEvent | None = None  # the event that redacted this one

    @classmethod
    def of(cls, event: StoredEvent, txn: tuple[int, str, str] | None,
           redaction: StoredEvent | None = None) -> CachedEvent:
        client = client_event(event.pdu, now_ms=0, include_room_id=False)
        del client["unsigned"]
        head = jsonenc.object_head(client)
        return cls(event, client, head, txn, redaction)

    def render(self, user_id: str, account_id: int, device_id: str, now_ms: int) -> Any:
        """The event as ``render_events`` makes it for this requester, at ``now_ms``."""
        unsigned: dict[str, Any] = {
            "age": max(0, now_ms - int(self.event.pdu.get("origin_server_ts", 0)))}
        if self.txn is not None and self.event.sender == user_id \
                and self.txn[0] == account_id and self.txn[1] == device_id:
            unsigned["transaction_id"] = self.txn[2]
        if self.redaction is not None:
            unsigned["redacted_because"] = client_event(self.redaction.pdu, now_ms=now_ms)
        if self.head is not None:
            return jsonenc.raw(self.head + b',"unsigned":' + jsonenc.dumps(unsigned) + b"}")
        return {**self.client, "unsigned": unsigned}


def relates_within(events: list[CachedEvent]) -> bool:
    """Whether one of the events relates to another of them: then the earlier one
    carries a bundled aggregation (spec: "Aggregations of child events"), which
    the database path computes; memory serves only batches without one."""
    ids = {cached.event.event_id for cached in events}
    for cached in events:
        content = cached.event.pdu.get("content")
        relates = content.get("m.relates_to") if isinstance(content, dict) else None
        if isinstance(relates, dict) and relates.get("event_id") in ids:
            return True
    return False


@dataclass(eq=False)
class RoomRing:
    """A room's recent events, oldest first; ``floor``: the newest position dropped."""

    floor: int
    events: deque[CachedEvent] = field(default_factory=lambda: deque(maxlen=RING_SIZE))

    def since(self, position: int) -> list[CachedEvent]:
        out = []
        for cached in reversed(self.events):
            if cached.event.stream_ordering <= position:
                break
            out.append(cached)
        out.reverse()
        return out


class SyncCache:
    def __init__(self, *, clock: Any = time.time) -> None:
        self.clock = clock
        self.ready = False
        self.positions: dict[str, int] = dict.fromkeys(STREAMS, 0)
        self.base = 0
        self._rings: OrderedDict[str, RoomRing] = OrderedDict()  # least recent first
        self._event_count = 0
        self._memberships: dict[str, dict[str, CachedMembership]] = {}
        self._membership_generation = 0
        self._key_counts: dict[tuple[int, str], tuple[dict[str, int], list[str]]] = {}
        self._key_generation = 0
        self.generation = 0  # bumped by every reset: loads begun before it are stale
        # room -> stream position of its newest bump event; stamps only grow, so a
        # read from the database racing a publish keeps the larger (``max``).
        self._bumps: dict[str, int] = {}
        # room -> user -> current member event, for sliding sync's $LAZY members;
        # filled from database reads, kept current by ``publish``.
        self._members: dict[str, dict[str, StoredEvent]] = {}

    # --- loading and resets -------------------------------------------------------
    def load(self, maxima: Iterable[int], generation: int) -> bool:
        """Start covering from the stream maxima read at ``generation``."""
        if generation != self.generation:
            return False  # something was published meanwhile: read again
        self.positions = dict(zip(STREAMS, maxima, strict=True))
        self.base = self.positions["events"]
        self.ready = True
        return True

    def reset(self) -> None:
        """Forget everything (another writer was seen): the next sync reloads."""
        self.ready = False
        self.generation += 1
        self._rings.clear()
        self._event_count = 0
        self.forget_memberships()
        self._key_counts.clear()
        self._key_generation += 1
        self._bumps.clear()
        self._members.clear()

    def catch_up(self, maxima: Iterable[int]) -> bool:
        """Stream maxima read from the database: True if another process wrote
        (then the events cache restarts, the other positions move up)."""
        moved = False
        for name, value in zip(STREAMS, maxima, strict=True):
            if value > self.positions[name]:
                moved = True
                if name == "events":
                    self.reset()
                    return True
                self.positions[name] = value
        return moved

    # --- writers ------------------------------------------------------------------
    def advance(self, stream: str, position: int) -> None:
        """A local writer committed ``position`` on ``stream``."""
        if not self.ready:
            self.generation += 1  # a load in progress may have read the maxima before
        elif position > self.positions[stream]:
            self.positions[stream] = position

    def publish(self, event: StoredEvent, txn: tuple[int, str, str] | None = None,
                redacted: StoredEvent | None = None) -> None:
        """A committed event of this process, in stream order (under the room lock).

        ``redacted``: the event it redacted, already replaced by its redacted form."""
        self.generation += 1  # a load reading the maxima before this commit is stale
        if event.type == "m.room.member" and event.state_key:
            self.forget_memberships(event.state_key)
            if event.room_id in self._members:
                self._members[event.room_id][event.state_key] = event
        if event.type in BUMP_EVENT_TYPES:
            self.remember_bump_stamps({event.room_id: event.stream_ordering})
        if not self.ready or event.stream_ordering <= self.base:
            return  # not covered: the load read the maxima after this commit
        if event.stream_ordering != self.positions["events"] + 1:
            self.reset()  # someone else wrote in between: cover from scratch
            return
        self.positions["events"] = event.stream_ordering
        ring = self._rings.get(event.room_id)
        if ring is None:
            ring = self._rings[event.room_id] = RoomRing(floor=self.base)
        else:
            self._rings.move_to_end(event.room_id)
        if len(ring.events) == RING_SIZE:
            ring.floor = ring.events[0].event.stream_ordering
            self._event_count -= 1
        ring.events.append(CachedEvent.of(event, txn))
        self._event_count += 1
        if redacted is not None:
            self._replace(redacted, event)
        while self._event_count > MAX_EVENTS and len(self._rings) > 1:
            _room, old = self._rings.popitem(last=False)
            # Its events leave the cache: nothing at or before them is covered now.
            self.base = max(self.base, old.events[-1].event.stream_ordering)
            self._event_count -= len(old.events)

    def _replace(self, redacted: StoredEvent, redaction: StoredEvent) -> None:
        ring = self._rings.get(redacted.room_id)
        for n, cached in enumerate(ring.events if ring else ()):
            if cached.event.event_id == redacted.event_id:
                ring.events[n] = CachedEvent.of(redacted, cached.txn, redaction)  # type: ignore[union-attr]
                return

    def forget_device(self, account_id: int, device_id: str) -> None:
        """A device logged in again (or went): its key counts and transaction ids go."""
        self._key_counts.pop((account_id, device_id), None)
        self._key_generation += 1
        for ring in self._rings.values():
            for n, cached in enumerate(ring.events):
                if cached.txn is not None and cached.txn[:2] == (account_id, device_id):
                    ring.events[n] = CachedEvent(cached.event, cached.client, cached.head,
                                                 None, cached.redaction)

    # --- reading ------------------------------------------------------------------
    def room_events_since(self, room_id: str, position: int) -> list[CachedEvent] | None:
        """The room's events after ``position``, or None if the cache lacks some."""
        if not self.ready or position < self.base:
            return None
        ring = self._rings.get(room_id)
        if ring is None:
            return []  # no event of this room since the cache began
        if position < ring.floor:
            return None
        return ring.since(position)

    def memberships(self, user_id: str) -> dict[str, CachedMembership] | None:
        return self._memberships.get(user_id)

    @property
    def membership_generation(self) -> int:
        return self._membership_generation

    def remember_memberships(self, user_id: str, rows: Iterable[Any], generation: int) -> None:
        """Memberships read from the database when the generation was ``generation``."""
        if generation != self._membership_generation:
            return  # a membership changed while they were read: they may be stale
        if len(self._memberships) >= MAX_USERS:
            self._memberships.clear()
        self._memberships[user_id] = {
            r.room_id: CachedMembership(r.room_id, r.membership, r.stream_ordering,
                                        r.event_id, r.forgotten) for r in rows}

    def forget_memberships(self, user_id: str | None = None) -> None:
        self._membership_generation += 1
        if user_id is None:
            self._memberships.clear()
        else:
            self._memberships.pop(user_id, None)

    def bump_stamp(self, room_id: str) -> int | None:
        return self._bumps.get(room_id)

    def remember_bump_stamps(self, stamps: dict[str, int]) -> None:
        if len(self._bumps) >= MAX_USERS:
            self._bumps.clear()
        for room_id, position in stamps.items():
            if position > self._bumps.get(room_id, 0):
                self._bumps[room_id] = position

    def member_event(self, room_id: str, user_id: str) -> StoredEvent | None:
        return self._members.get(room_id, {}).get(user_id)

    def track_members(self, room_ids: Iterable[str]) -> None:
        """Before reading member events of these rooms: from now on ``publish``
        records their member changes, so a read racing a change cannot win."""
        if len(self._members) >= MAX_USERS // 10:
            self._members.clear()
        for room_id in room_ids:
            self._members.setdefault(room_id, {})

    def remember_member_events(self, room_id: str, events: Iterable[StoredEvent]) -> None:
        """Member events read from the database after ``track_members``; what
        ``publish`` recorded meanwhile is newer and stays."""
        known = self._members.get(room_id)
        if known is None:
            return  # dropped (reset or bound) during the read
        for event in events:
            if event.type == "m.room.member" and event.state_key is not None:
                known.setdefault(event.state_key, event)

    def key_counts(self, account_id: int, device_id: str,
                   ) -> tuple[dict[str, int], list[str]] | None:
        return self._key_counts.get((account_id, device_id))

    @property
    def key_generation(self) -> int:
        return self._key_generation

    def remember_key_counts(self, account_id: int, device_id: str,
                            counts: tuple[dict[str, int], list[str]], generation: int) -> None:
        if generation != self._key_generation:
            return
        if len(self._key_counts) >= MAX_USERS:
            self._key_counts.clear()
        self._key_counts[(account_id, device_id)] = counts

    def forget_key_counts(self, account_id: int, device_id: str) -> None:
        self._key_counts.pop((account_id, device_id), None)
        self._key_generation += 1
