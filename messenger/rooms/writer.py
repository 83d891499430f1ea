"""The one writer of room events: every change to a room is stored here
(spec: Client-Server API 9 "Events"; auth per room version; Server-Server API
"PDUs" for ``prev_events``, ``depth`` and ``auth_events``).

An event is built from the room's current state (prev_events = the room's
forward extremities, auth_events chosen per the S2S rules), hashed, signed,
given its event id, checked against the auth rules and stored with the state
update in one transaction; then the notifier wakes /sync.  One lock per writer
serialises writers, which keeps stream orderings gapless.  In a room with
members on other servers the event also gets a state group (the state after
it, for resolving forks later) and is queued for those servers in the same
transaction (``outbox``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import Database
from federation.matrix.server_acl import EVENT_TYPE as ACL_EVENT
from federation.matrix.server_acl import ServerAcl
from messenger.events.hashing import add_hashes, event_id_for
from messenger.events.identifiers import room_id_of_create, server_of
from messenger.events.redaction import redact
from messenger.events.room_versions import RoomVersion
from messenger.events.signing import EventSigner
from messenger.identity import Requester
from messenger.rooms import state as room_state
from messenger.rooms.auth import check_event
from messenger.rooms.batching import MessageSend
from messenger.rooms.errors import DeviceLoggedOut, Forbidden, MessengerError, RoomNotFound
from messenger.rooms.heads import RoomHead, RoomHeads, next_depth
from messenger.rooms.lookups import room_power_levels
from messenger.storage import dag, devices, push_actions
from messenger.storage import events as store
from messenger.storage.device_messages import stream_maxima
from messenger.storage.events import StoredEvent
from messenger.storage.stream_locks import lock_stream
from messenger.storage.tables import TxnRow
from messenger.sync.cache import SyncCache
from messenger.sync.notifier import Notifier

# Written in the transaction of an appended event: (session, event id).
AlsoWrite = Callable[[AsyncSession, str], Awaitable[None]]

log = logging.getLogger("schulhof.messenger")

TxnKey = tuple[int, str, str]  # (account id, device id, transaction id)
# What one transaction of several events wrote: the events stored (each with its
# client transaction id, if any), and per event asked for its event or its error.
WrittenBatch = tuple[list[tuple[StoredEvent, TxnKey | None]], list[StoredEvent | Exception]]
# Told about each event stored, in its transaction, with the room state before it
# (messenger.unread evaluates push rules there): may add rows, must not commit.
EventStoredHook = Callable[[AsyncSession, StoredEvent, Mapping[tuple[str, str],
                                                               Mapping[str, Any]]],
                           Awaitable[None]]


@dataclass(frozen=True)
class ServerAppend:
    """One event for :meth:`RoomWriter.append_batch`."""

    sender: str
    room_id: str
    event_type: str
    content: Mapping[str, Any]
    state_key: str | None = None


class PduOutbox(Protocol):
    """Where events for other servers are queued (``messenger.rooms.federating``)."""

    async def add(self, session: AsyncSession, destinations: frozenset[str],
                  event: StoredEvent) -> None:
        """Queue ``event`` for ``destinations`` in the writer's transaction."""

    def wake(self) -> None:
        """Events were committed: send them."""


@dataclass
class Transaction:
    """One write transaction under the lock; what it commits is published afterwards."""

    session: AsyncSession
    committed: list[tuple[StoredEvent, TxnKey | None, StoredEvent | None]] = \
        field(default_factory=list)
    stale: set[str] = field(default_factory=set)  # rooms whose heads must be read again

    def forget_head(self, room_id: str) -> None:
        """The room's current state moved in a way the heads do not follow (a fork
        resolved, a join from another server): read it again next time."""
        self.stale.add(room_id)

    def publish(self, event: StoredEvent, txn: TxnKey | None = None,
                redacted: StoredEvent | None = None) -> None:
        """Hand ``event`` to the heads, the sync cache and /sync once the commit is done."""
        self.committed.append((event, txn, redacted))


class RoomWriter:
    def __init__(self, db: Database, notifier: Notifier, *, clock: Callable[[], float],
                 cache: SyncCache | None, signer: EventSigner | None = None,
                 server_name: str | None = None) -> None:
        self.db = db
        self.server_name = server_name
        # Set when the school federates: events of rooms with remote members go there.
        self.outbox: PduOutbox | None = None
        # Signs every event this server creates (federation checks it); None: unsigned.
        self._signer = signer
        self.notifier = notifier
        self._clock = clock
        self._write_lock = asyncio.Lock()
        self._heads = RoomHeads()  # latest event and state per room, under the lock
        # /sync's view of recent events: fed here, in stream order, under the lock.
        self.cache = cache
        # Told about every committed event after /sync is woken (messenger.push); must not block.
        self.after_commit: Callable[[list[StoredEvent]], None] | None = None
        self.event_stored: EventStoredHook | None = None

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def store_event(self, session: AsyncSession, version: RoomVersion, room_id: str,
                          state: Mapping[tuple[str, str], Mapping[str, Any]],
                          prev: Mapping[str, int], sender: str, event_type: str,
                          content: Mapping[str, Any], state_key: str | None = None,
                          redacts: str | None = None, position: int | None = None,
                          flush: bool = True, head: RoomHead | None = None) -> StoredEvent:
        """Build the event after ``prev`` (event id -> depth), check it against
        ``state`` and insert it (the caller holds the write lock, see
        ``transaction``).  With ``head``, a federated room's event gets its state
        group and goes to the room's other servers."""
        pdu = self.build_event(version, room_id, state, prev, sender, event_type, content,
                               state_key, redacts)
        check_event(pdu, state, version)
        pdu = self.finish_event(pdu, version)
        event_id = event_id_for(pdu, version)
        if position is None:
            position = await store.max_stream_ordering(session) + 1
        group = None
        if head is not None and self._remote_servers(head):
            group = await self._state_group_after(session, room_id, head, pdu, event_id)
        event = await store.insert_event(session, pdu, event_id, position, flush=flush,
                                         state_group=group)
        if self.event_stored is not None:
            await self.event_stored(session, event, head.state if head is not None else state)
        if head is not None and self.outbox is not None:
            destinations = self._remote_servers(head)
            if state_key is not None and event_type == "m.room.member":
                destinations |= self._remote_servers(head, event.pdu)
            if destinations:
                await self.outbox.add(session, destinations, event)
        return event

    def build_event(self, version: RoomVersion, room_id: str,
                    state: Mapping[tuple[str, str], Mapping[str, Any]],
                    prev: Mapping[str, int], sender: str, event_type: str,
                    content: Mapping[str, Any], state_key: str | None = None,
                    redacts: str | None = None) -> dict[str, Any]:
        """The unsigned, unhashed PDU (also the template of ``make_join``)."""
        auth_events = room_state.selected_auth_events(event_type, sender, state_key, content,
                                                      room_id, state)
        pdu: dict[str, Any] = {
            "room_id": room_id, "sender": sender, "type": event_type,
            "content": dict(content), "origin_server_ts": self._now_ms(),
            "depth": next_depth(prev), "prev_events": list(prev),
            "auth_events": auth_events,
        }
        if version.room_id_is_create_hash and event_type == "m.room.create":
            del pdu["room_id"]  # MSC4291: its hash will be the room id
        if state_key is not None:
            pdu["state_key"] = state_key
        if redacts is not None:
            if version.redacts_in_content:
                pdu["content"]["redacts"] = redacts
            else:
                pdu["redacts"] = redacts
        return pdu

    def hashed_room_create(self, version: RoomVersion, sender: str,
                           content: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
        """A room version 12 create event, hashed and signed, with the room id its
        hash makes (carried in memory; the wire form drops it), and its event id."""
        pdu = self.finish_event(self.build_event(version, "", {}, {}, sender, "m.room.create",
                                                 content, ""), version)
        event_id = event_id_for(pdu, version)
        pdu["room_id"] = room_id_of_create(event_id)
        check_event({**pdu, "event_id": event_id}, {}, version)
        return pdu, event_id

    async def store_hashed_room_create(self, session: AsyncSession, pdu: Mapping[str, Any],
                                       event_id: str) -> StoredEvent:
        """Insert the create event ``hashed_room_create`` made (the caller holds the
        write lock and has inserted the room)."""
        position = await store.max_stream_ordering(session) + 1
        event = await store.insert_event(session, pdu, event_id, position)
        if self.event_stored is not None:
            await self.event_stored(session, event, {})
        return event

    def finish_event(self, pdu: Mapping[str, Any], version: RoomVersion) -> dict[str, Any]:
        """Hashed and signed by this server."""
        out = add_hashes(pdu)
        if self._signer is not None:
            out = self._signer.sign(out, version)
        return out

    def _remote_servers(self, head: RoomHead,
                        member: Mapping[str, Any] | None = None) -> frozenset[str]:
        """The other servers with joined members that the room's server ACL lets take
        part (a denied server gets nothing more); with ``member``, that member's server
        too (a kick or ban must reach the server of the one it removes)."""
        if self.server_name is None:
            return frozenset()
        servers = head.servers
        acl = head.state.get((ACL_EVENT, ""))
        if acl is not None and isinstance(acl.get("content"), dict):
            judged = ServerAcl.from_content(acl["content"])
            servers = frozenset(s for s in servers if judged.allows(s))
        if member is not None:
            servers = servers | {server_of(str(member.get("state_key", "")))}
        return servers - {self.server_name}

    async def _state_group_after(self, session: AsyncSession, room_id: str, head: RoomHead,
                                 pdu: Mapping[str, Any], event_id: str) -> int:
        """The state group of the state after ``pdu`` (a delta on the head's)."""
        if head.state_group is None:
            head.state_group = await dag.new_state_group(
                session, room_id, {k: e["event_id"] for k, e in head.state.items()})
        state_key = pdu.get("state_key")
        if not isinstance(state_key, str):
            return head.state_group
        key = (pdu["type"], state_key)
        after = {k: e["event_id"] for k, e in head.state.items()}
        after[key] = event_id
        head.state_group = await dag.new_state_group(
            session, room_id, after, prev_group=head.state_group, delta={key: event_id})
        return head.state_group

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """The write lock and one write transaction; the events given to its
        ``publish`` reach the sync cache after the commit and /sync after the lock."""
        async with self._write_lock:
            try:
                async with self.db.write() as session:
                    await lock_stream(session, "events")
                    write = Transaction(session)
                    yield write
            except BaseException:
                if self.outbox is not None:
                    self._heads = RoomHeads()  # a state group never committed
                raise
            for event, txn, redacted in write.committed:
                self._publish(event, txn, redacted)
            for room_id in write.stale:
                self._heads.forget(room_id)
        self._notify([event for event, _, _ in write.committed])

    def _publish(self, event: StoredEvent, txn: TxnKey | None = None,
                 redacted: StoredEvent | None = None) -> None:
        """Hand a committed event to the sync cache (called under the write lock)."""
        self._heads.committed(event)
        if redacted is not None:
            self._heads.forget(event.room_id)
        if self.cache is not None:
            self.cache.publish(event, txn, redacted)

    async def head(self, write: Transaction, room_id: str, newest: int | None = None
                   ) -> RoomHead:
        """The room's head inside ``transaction`` (raises ``RoomNotFound``); ``newest``:
        the stream's maximum if the caller has read it in this transaction."""
        if newest is None:
            newest = await store.max_stream_ordering(write.session)
        return await self._heads.get(write.session, room_id, newest)

    async def catch_up(self) -> bool:
        """Compare the sync cache with the database; True if another process wrote
        (``schulhof rooms post``): the cache then covers afresh from the database.

        Under the write lock, so this process's own commits are all published."""
        if self.cache is None:
            return False
        async with self._write_lock:
            async with self.db.read() as session:
                maxima = await stream_maxima(session)
            return self.cache.catch_up(maxima) if self.cache.ready else False

    def _notify(self, events: list[StoredEvent]) -> None:
        for event in events:
            users = [event.state_key] if event.type == "m.room.member" and event.state_key \
                else []
            self.notifier.room_event(event.room_id, users)
        if self.after_commit is not None:
            self.after_commit(events)
        if self.outbox is not None and events:
            self.outbox.wake()

    # --- one event --------------------------------------------------------------------
    async def append(self, requester: Requester | None, sender: str, room_id: str,
                     event_type: str, content: Mapping[str, Any], *,
                     state_key: str | None = None, txn_id: str | None = None,
                     redacts: str | None = None, also: AlsoWrite | None = None
                     ) -> StoredEvent:
        """One event; ``also(session, event_id)`` writes what belongs with it in the
        same transaction (its exception undoes the event)."""
        async with self.transaction() as write:
            session = write.session
            if txn_id is not None and requester is not None:
                known = await session.get(
                    TxnRow, (requester.account_id, requester.device_id, txn_id))
                if known is not None:
                    event = await store.get_event(session, known.event_id)
                    if event is not None:
                        return event
            newest = await store.max_stream_ordering(session)
            head = await self._heads.get(session, room_id, newest)
            version = head.version
            keys = room_state.auth_state_keys(event_type, sender, state_key, content)
            state = {k: head.state[k] for k in keys if k in head.state}
            target = None
            if redacts is not None:
                target = await self._check_redaction(session, room_id, sender, redacts)
            prev = head.prev_events()
            event = await self.store_event(session, version, room_id, state, prev,
                                           sender, event_type, content, state_key, redacts,
                                           newest + 1, head=head)
            await dag.move_extremities(session, room_id, prev, [event.event_id])
            redacted = None
            if target is not None:
                body = redact(target.pdu, version)
                await store.replace_with_redacted(session, target.event_id, body,
                                                  event.event_id)
                body = {k: v for k, v in body.items() if k != "event_id"}
                redacted = StoredEvent(target.event_id, target.stream_ordering, room_id,
                                       {**body, "event_id": target.event_id},
                                       event.event_id)
            txn = None
            if txn_id is not None and requester is not None:
                device = (requester.account_id, requester.device_id)
                if device not in await devices.lock_live_devices(session, {device}):
                    raise DeviceLoggedOut("the device was logged out")
                session.add(TxnRow(account_id=requester.account_id,
                                   device_id=requester.device_id, txn_id=txn_id,
                                   event_id=event.event_id))
                txn = (requester.account_id, requester.device_id, txn_id)
            if also is not None:
                await also(session, event.event_id)
            write.publish(event, txn, redacted)
        log.debug("event=room_event room=%s type=%s sender=%s id=%s", room_id, event_type,
                 sender, event.event_id)
        return event

    async def _check_redaction(self, session: AsyncSession, room_id: str, sender: str,
                               redacts: str) -> StoredEvent:
        """The rule servers apply to redactions in v3+ rooms: own events, or redact level."""
        target = await store.get_event(session, redacts)
        if target is None or target.room_id != room_id:
            raise RoomNotFound(f"unknown event {redacts}")
        if target.sender != sender:
            levels = await room_power_levels(session, room_id)
            if levels.user_level(sender) < levels.redact:
                raise Forbidden(f"redacting others' events needs power level {levels.redact}")
        return target

    # --- server-made events in batches ---------------------------------------------------
    async def append_batch(self, appends: list[ServerAppend]) -> list[StoredEvent | Exception]:
        """Events the server makes in users' names (the school rooms' invitations and
        joins) in one transaction, in order, each checked against the auth rules with
        the state the ones before it made: per append its event or its error (an
        error leaves the others in).  Should the transaction fail, each goes alone.

        A 2,000-user school's first start brings every member into every group room:
        one commit per member event made that take minutes (issue 15)."""
        if not appends:
            return []
        written = await self._write_together("append_batch", len(appends),
                                             lambda: self._write_batch(appends))
        if written is None:
            results: list[StoredEvent | Exception] = []
            for a in appends:
                try:
                    results.append(await self.append(None, a.sender, a.room_id, a.event_type,
                                                     a.content, state_key=a.state_key))
                except MessengerError as exc:
                    results.append(exc)
            return results
        return written[1]

    async def _write_together(self, name: str, count: int,
                              write: Callable[[], Awaitable[WrittenBatch]],
                              ) -> WrittenBatch | None:
        """``write`` (one transaction of several events) under the write lock, what it
        stored published to the sync cache and then told to the listeners; None if
        the transaction failed (the caller then writes each event alone)."""
        async with self._write_lock:
            try:
                written = await write()
            except Exception as exc:
                self._heads = RoomHeads()  # it moved on with events never committed
                log.warning("event=%s_failed count=%d error=%s", name, count,
                            type(exc).__name__)
                return None
            if self.cache is not None:
                for event, txn in written[0]:
                    self.cache.publish(event, txn)
        self._notify([event for event, _ in written[0]])
        return written

    async def _write_batch(self, appends: list[ServerAppend]) -> WrittenBatch:
        stored: list[tuple[StoredEvent, TxnKey | None]] = []
        results: list[StoredEvent | Exception] = []
        async with self.db.write() as session:
            await lock_stream(session, "events")
            newest = await store.max_stream_ordering(session)
            before: dict[str, tuple[RoomHead, set[str]]] = {}
            for a in appends:
                try:
                    head = await self._heads.get(session, a.room_id, newest)
                    before.setdefault(a.room_id, (head, set(head.extremities)))
                    keys = room_state.auth_state_keys(a.event_type, a.sender, a.state_key,
                                                      a.content)
                    state = {k: head.state[k] for k in keys if k in head.state}
                    event = await self.store_event(session, head.version, a.room_id, state,
                                                   head.prev_events(), a.sender, a.event_type,
                                                   a.content, a.state_key,
                                                   position=newest + 1, head=head)
                except MessengerError as exc:
                    results.append(exc)
                    continue
                newest = event.stream_ordering
                self._heads.committed(event)  # undone by the caller if the commit fails
                stored.append((event, None))
                results.append(event)
            for room_id, (head, old) in before.items():
                await dag.move_extremities(session, room_id, old, set(head.extremities))
        return stored, results

    # --- messages in batches ------------------------------------------------------------
    async def append_messages(self, sends: list[MessageSend],
                              ) -> list[StoredEvent | Exception]:
        """Message events in one transaction (``messenger.rooms.batching``): per send
        its event or its error.  Should the transaction fail, each goes alone."""
        written = await self._write_together("send_batch", len(sends),
                                             lambda: self._write_messages(sends))
        if written is None:
            results: list[StoredEvent | Exception] = []
            for send in sends:
                try:
                    results.append(await self.append(
                        send.requester, send.requester.user_id, send.room_id,
                        send.event_type, send.content, txn_id=send.txn_id))
                except Exception as exc:
                    results.append(exc)
            return results
        stored, results = written
        for event, _ in stored:
            log.debug("event=room_event room=%s type=%s sender=%s id=%s", event.room_id,
                     event.type, event.sender, event.event_id)
        return results

    async def _write_messages(self, sends: list[MessageSend]) -> WrittenBatch:
        stored: list[tuple[StoredEvent, TxnKey | None]] = []
        results: list[StoredEvent | Exception] = []
        async with self.db.write() as session:
            await lock_stream(session, "events")
            # The batch's notification rows go in together before the commit.
            push_actions.hold(session)
            newest = await store.newest_position(session)
            known = await store.events_of_txns(session, [
                (s.requester.account_id, s.requester.device_id, s.txn_id)
                for s in sends if s.txn_id is not None])
            # A logout racing a send deletes the device its transaction id would
            # point at: that send is refused, not the whole batch's commit.
            live = await devices.lock_live_devices(session, {
                (s.requester.account_id, s.requester.device_id)
                for s in sends if s.txn_id is not None})
            made: dict[TxnKey, StoredEvent] = {}
            # Per room its head and extremities before the batch: stored once at the end.
            before: dict[str, tuple[RoomHead, set[str]]] = {}
            for send in sends:
                who = send.requester
                key = (who.account_id, who.device_id, send.txn_id) \
                    if send.txn_id is not None else None
                if key is not None and key in made:  # the same request twice in a batch
                    results.append(made[key])
                    continue
                if key is not None and key in known:
                    event = await store.get_event(session, known[key])
                    if event is not None:
                        results.append(event)
                        continue
                if key is not None and (who.account_id, who.device_id) not in live:
                    results.append(DeviceLoggedOut("the device was logged out"))
                    continue
                try:
                    head = await self._heads.get(session, send.room_id, newest)
                    before.setdefault(send.room_id, (head, set(head.extremities)))
                    keys = room_state.auth_state_keys(send.event_type, who.user_id, None,
                                                      send.content)
                    state = {k: head.state[k] for k in keys if k in head.state}
                    event = await self.store_event(session, head.version, send.room_id, state,
                                                   head.prev_events(), who.user_id,
                                                   send.event_type, send.content,
                                                   position=newest + 1, flush=False,
                                                   head=head)
                except MessengerError as exc:
                    results.append(exc)
                    continue
                newest = event.stream_ordering
                self._heads.committed(event)  # undone by the caller if the commit fails
                txn: TxnKey | None = None
                if key is not None:
                    session.add(TxnRow(account_id=who.account_id, device_id=who.device_id,
                                       txn_id=send.txn_id, event_id=event.event_id))
                    txn = key
                    made[key] = event
                stored.append((event, txn))
                results.append(event)
            await dag.move_extremities_of(session, {
                room_id: (old, set(head.extremities)) for room_id, (head, old) in before.items()})
            await push_actions.write_held(session)
        return stored, results
