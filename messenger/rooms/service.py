"""The room service: every change to a room goes through ``_append`` here
(spec: Client-Server API 10 "Rooms", 9 "Events"; auth per room version).

An event is built from the room's current state (prev_events = the room's
latest event, auth_events chosen per the S2S rules), hashed, given its event
id, checked against the auth rules and stored with the state update in one
transaction; then the notifier wakes /sync.  One lock per service serialises
writers, which keeps every room's graph linear and stream orderings gapless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from messenger.events.hashing import add_hashes, event_id_for
from messenger.events.identifiers import (
    InvalidIdentifier,
    is_room_id,
    new_room_id,
    parse_room_alias,
)
from messenger.events.redaction import redact
from messenger.events.room_versions import (
    DEFAULT_ROOM_VERSION,
    KNOWN_ROOM_VERSIONS,
    RoomVersion,
    room_version,
)
from messenger.identity import Requester
from messenger.rooms import state as room_state
from messenger.rooms.auth import check_event
from messenger.rooms.batching import MessageSend, SendBatcher
from messenger.rooms.errors import (
    AliasInUse,
    Forbidden,
    InvalidRequest,
    MessengerError,
    RoomNotFound,
    UnsupportedVersion,
)
from messenger.rooms.heads import RoomHeads
from messenger.rooms.policy import ChatPolicy
from messenger.rooms.power import power_levels
from messenger.rooms.presets import CreateRoomRequest, initial_state
from messenger.storage import aliases as alias_store
from messenger.storage import events as store
from messenger.storage.device_messages import stream_maxima
from messenger.storage.events import StoredEvent
from messenger.storage.tables import TxnRow
from messenger.sync.cache import SyncCache
from messenger.sync.notifier import Notifier

log = logging.getLogger("schulhof.messenger")

StateMapEvents = dict[tuple[str, str], StoredEvent]


@dataclass(frozen=True)
class Page:
    """A page of /messages: events in the order asked, and the token position to go on."""

    events: list[StoredEvent]
    start_position: int
    next_position: int | None


class RoomService:
    def __init__(self, db: Any, server_name: str, notifier: Notifier, policy: ChatPolicy, *,
                 clock: Callable[[], float] = time.time, cache: SyncCache | None = None,
                 ) -> None:
        self.db = db
        self.server_name = server_name
        self.notifier = notifier
        self.policy = policy
        self._clock = clock
        self._write_lock = asyncio.Lock()
        self._heads = RoomHeads()  # latest event and state per room, under the lock
        self._sends = SendBatcher(self._append_messages)
        # /sync's view of recent events: fed here, in stream order, under the lock.
        self.cache = cache

    # --- building and storing events --------------------------------------------
    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _store(self, session: AsyncSession, version: RoomVersion, room_id: str,
                     state: Mapping[tuple[str, str], Mapping[str, Any]],
                     latest: StoredEvent | None, sender: str, event_type: str,
                     content: Mapping[str, Any], state_key: str | None = None,
                     redacts: str | None = None, position: int | None = None,
                     flush: bool = True) -> StoredEvent:
        keys = room_state.auth_state_keys(event_type, sender, state_key, content)
        auth_events = [] if event_type == "m.room.create" else \
            [state[k]["event_id"] for k in keys if k in state]
        pdu: dict[str, Any] = {
            "room_id": room_id, "sender": sender, "type": event_type,
            "content": dict(content), "origin_server_ts": self._now_ms(),
            "depth": (latest.pdu["depth"] + 1) if latest else 1,
            "prev_events": [latest.event_id] if latest else [],
            "auth_events": auth_events,
        }
        if state_key is not None:
            pdu["state_key"] = state_key
        if redacts is not None:
            if version.redacts_in_content:
                pdu["content"]["redacts"] = redacts
            else:
                pdu["redacts"] = redacts
        check_event(pdu, state, version)
        pdu = add_hashes(pdu)
        event_id = event_id_for(pdu, version)
        if position is None:
            position = await store.max_stream_ordering(session) + 1
        return await store.insert_event(session, pdu, event_id, position, flush=flush)

    def _publish(self, event: StoredEvent, txn: tuple[int, str, str] | None = None,
                 redacted: StoredEvent | None = None) -> None:
        """Hand a committed event to the sync cache (called under the write lock)."""
        self._heads.committed(event)
        if redacted is not None:
            self._heads.forget(event.room_id)
        if self.cache is not None:
            self.cache.publish(event, txn, redacted)

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

    async def _room_version(self, session: AsyncSession, room_id: str) -> RoomVersion:
        row = await store.room(session, room_id)
        if row is None:
            raise RoomNotFound(f"unknown room {room_id}")
        return room_version(row.room_version)

    async def _append(self, requester: Requester | None, sender: str, room_id: str,
                      event_type: str, content: Mapping[str, Any], *,
                      state_key: str | None = None, txn_id: str | None = None,
                      redacts: str | None = None) -> StoredEvent:
        async with self._write_lock:
            async with self.db.write() as session:
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
                event = await self._store(session, version, room_id, state, head.latest,
                                          sender, event_type, content, state_key, redacts,
                                          newest + 1)
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
                    session.add(TxnRow(account_id=requester.account_id,
                                       device_id=requester.device_id, txn_id=txn_id,
                                       event_id=event.event_id))
                    txn = (requester.account_id, requester.device_id, txn_id)
            self._publish(event, txn, redacted)
        self._notify([event])
        log.info("event=room_event room=%s type=%s sender=%s id=%s", room_id, event_type,
                 sender, event.event_id)
        return event

    async def _check_redaction(self, session: AsyncSession, room_id: str, sender: str,
                               redacts: str) -> StoredEvent:
        """The rule servers apply to redactions in v3+ rooms: own events, or redact level."""
        target = await store.get_event(session, redacts)
        if target is None or target.room_id != room_id:
            raise RoomNotFound(f"unknown event {redacts}")
        if target.sender != sender:
            state = {k: e.pdu for k, e in (await store.current_state(
                session, room_id, [("m.room.create", ""), ("m.room.power_levels", "")])).items()}
            levels = power_levels(state)
            if levels.user_level(sender) < levels.redact:
                raise Forbidden(f"redacting others' events needs power level {levels.redact}")
        return target

    # --- rooms ----------------------------------------------------------------------
    async def create_room(self, requester: Requester, request: CreateRoomRequest) -> str:
        for invitee in request.invite:
            await self.policy.check_may_invite(requester.account, requester.user_id, invitee)
        return await self._create_room(requester.user_id, requester.account.display_name,
                                       request)

    async def create_room_as(self, sender: str, display_name: str,
                             request: CreateRoomRequest) -> str:
        """A room created by the server itself (its system user): no role policy check,
        the caller (``messenger.school_rooms``) decides who belongs in the room."""
        return await self._create_room(sender, display_name, request)

    async def _create_room(self, sender: str, display_name: str,
                           request: CreateRoomRequest) -> str:
        version = DEFAULT_ROOM_VERSION
        if request.room_version is not None:
            if request.room_version not in KNOWN_ROOM_VERSIONS:
                raise UnsupportedVersion(
                    f"room version {request.room_version!r} is not supported here")
            version = room_version(request.room_version)
        alias = None
        if request.room_alias_name is not None:
            alias = f"#{request.room_alias_name}:{self.server_name}"
            try:
                parse_room_alias(alias)
            except InvalidIdentifier as exc:
                raise InvalidRequest(str(exc)) from None
        room_id = new_room_id(self.server_name)
        templates = initial_state(request, creator=sender, creator_displayname=display_name,
                                  version=version, alias=alias)
        stored: list[StoredEvent] = []
        async with self._write_lock:
            async with self.db.write() as session:
                if alias is not None and await alias_store.resolve(session, alias):
                    raise AliasInUse(f"room alias {alias} already exists")
                await store.insert_room(session, room_id, version.identifier, sender,
                                        request.is_public)
                state: dict[tuple[str, str], Mapping[str, Any]] = {}
                latest = None
                for t in templates:
                    latest = await self._store(session, version, room_id, state, latest,
                                               sender, t.type, t.content, t.state_key)
                    state = room_state.apply(state, latest.pdu)
                    stored.append(latest)
                for invitee in request.invite:
                    content: dict[str, Any] = {"membership": "invite"}
                    if request.is_direct:
                        content["is_direct"] = True
                    latest = await self._store(session, version, room_id, state, latest,
                                               sender, "m.room.member", content, invitee)
                    state = room_state.apply(state, latest.pdu)
                    stored.append(latest)
                if alias is not None:
                    await alias_store.create(session, alias, room_id, sender)
            for event in stored:
                self._publish(event)
        self._notify(stored)
        log.info("event=room_created room=%s creator=%s version=%s invites=%d", room_id,
                 sender, version.identifier, len(request.invite))
        return room_id

    async def append_as(self, sender: str, room_id: str, event_type: str,
                        content: Mapping[str, Any], *, state_key: str | None = None) -> str:
        """An event the server sends in a user's name (its system user, or a local user
        it joins to a school room); the auth rules still apply."""
        event = await self._append(None, sender, room_id, event_type, content,
                                   state_key=state_key)
        return event.event_id

    async def resolve_room(self, room_id_or_alias: str) -> str:
        if is_room_id(room_id_or_alias):
            return room_id_or_alias
        try:
            parse_room_alias(room_id_or_alias)
        except InvalidIdentifier as exc:
            raise InvalidRequest(str(exc)) from None
        async with self.db.read() as session:
            room_id = await alias_store.resolve(session, room_id_or_alias)
        if room_id is None:
            raise RoomNotFound(f"unknown room alias {room_id_or_alias}")
        return room_id

    # --- membership ---------------------------------------------------------------
    async def join(self, requester: Requester, room_id_or_alias: str) -> str:
        room_id = await self.resolve_room(room_id_or_alias)
        content = {"membership": "join", "displayname": requester.account.display_name}
        await self._append(requester, requester.user_id, room_id, "m.room.member", content,
                           state_key=requester.user_id)
        return room_id

    async def invite(self, requester: Requester, room_id: str, target: str,
                     reason: str | None = None, is_direct: bool = False) -> None:
        await self.policy.check_may_invite(requester.account, requester.user_id, target)
        content: dict[str, Any] = {"membership": "invite"}
        if reason:
            content["reason"] = reason
        if is_direct:
            content["is_direct"] = True
        await self._append(requester, requester.user_id, room_id, "m.room.member", content,
                           state_key=target)

    async def _set_membership(self, requester: Requester, room_id: str, target: str,
                              membership: str, reason: str | None) -> None:
        content: dict[str, Any] = {"membership": membership}
        if reason:
            content["reason"] = reason
        await self._append(requester, requester.user_id, room_id, "m.room.member", content,
                           state_key=target)

    async def leave(self, requester: Requester, room_id: str, reason: str | None = None) -> None:
        await self._set_membership(requester, room_id, requester.user_id, "leave", reason)

    async def kick(self, requester: Requester, room_id: str, target: str,
                   reason: str | None = None) -> None:
        async with self.db.read() as session:
            row = await store.membership(session, room_id, target)
        if row is None or row.membership not in ("join", "invite"):
            raise Forbidden(f"{target} is not in the room")
        await self._set_membership(requester, room_id, target, "leave", reason)

    async def ban(self, requester: Requester, room_id: str, target: str,
                  reason: str | None = None) -> None:
        await self._set_membership(requester, room_id, target, "ban", reason)

    async def unban(self, requester: Requester, room_id: str, target: str,
                    reason: str | None = None) -> None:
        async with self.db.read() as session:
            row = await store.membership(session, room_id, target)
        if row is None or row.membership != "ban":
            raise Forbidden(f"{target} is not banned")
        await self._set_membership(requester, room_id, target, "leave", reason)

    async def forget(self, requester: Requester, room_id: str) -> None:
        async with self.db.write() as session:
            row = await store.membership(session, room_id, requester.user_id)
            if row is None:
                raise RoomNotFound(f"you were never in {room_id}")
            if row.membership in ("join", "invite"):
                raise InvalidRequest("leave the room before forgetting it")
            await store.set_forgotten(session, room_id, requester.user_id)
        if self.cache is not None:
            self.cache.forget_memberships(requester.user_id)

    # --- sending --------------------------------------------------------------------
    async def send(self, requester: Requester, room_id: str, event_type: str,
                   content: Mapping[str, Any], txn_id: str | None = None) -> str:
        if event_type == "m.room.redaction":
            raise InvalidRequest("use /redact to redact events")
        event = await self._sends.submit(MessageSend(requester, room_id, event_type, content,
                                                     txn_id))
        return event.event_id

    async def _append_messages(self, sends: list[MessageSend]) -> list[Any]:
        """Message events in one transaction (``messenger.rooms.batching``): per send
        its event or its error.  Should the transaction fail, each goes alone."""
        async with self._write_lock:
            try:
                stored, results = await self._write_messages(sends)
            except Exception as exc:
                self._heads = RoomHeads()  # it moved on with events never committed
                log.warning("event=send_batch_failed count=%d error=%s", len(sends),
                            type(exc).__name__)
                stored = None
            else:
                for event, txn in stored:
                    if self.cache is not None:
                        self.cache.publish(event, txn)
        if stored is None:
            results = []
            for send in sends:
                try:
                    results.append(await self._append(
                        send.requester, send.requester.user_id, send.room_id,
                        send.event_type, send.content, txn_id=send.txn_id))
                except Exception as exc:
                    results.append(exc)
            return results
        self._notify([event for event, _ in stored])
        for event, _ in stored:
            log.info("event=room_event room=%s type=%s sender=%s id=%s", event.room_id,
                     event.type, event.sender, event.event_id)
        return results

    async def _write_messages(self, sends: list[MessageSend],
                              ) -> tuple[list[tuple[StoredEvent, Any]], list[Any]]:
        stored: list[tuple[StoredEvent, Any]] = []
        results: list[Any] = []
        async with self.db.write() as session:
            newest = await store.max_stream_ordering(session)
            known = await store.events_of_txns(session, [
                (s.requester.account_id, s.requester.device_id, s.txn_id)
                for s in sends if s.txn_id is not None])
            made: dict[tuple[int, str, str], StoredEvent] = {}
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
                try:
                    head = await self._heads.get(session, send.room_id, newest)
                    keys = room_state.auth_state_keys(send.event_type, who.user_id, None,
                                                      send.content)
                    state = {k: head.state[k] for k in keys if k in head.state}
                    event = await self._store(session, head.version, send.room_id, state,
                                              head.latest, who.user_id, send.event_type,
                                              send.content, position=newest + 1, flush=False)
                except MessengerError as exc:
                    results.append(exc)
                    continue
                newest = event.stream_ordering
                self._heads.committed(event)  # undone by the caller if the commit fails
                txn = None
                if key is not None:
                    session.add(TxnRow(account_id=who.account_id, device_id=who.device_id,
                                       txn_id=send.txn_id, event_id=event.event_id))
                    txn = key
                    made[key] = event
                stored.append((event, txn))
                results.append(event)
        return stored, results

    async def set_state(self, requester: Requester, room_id: str, event_type: str,
                        state_key: str, content: Mapping[str, Any]) -> str:
        if event_type == "m.room.member":
            raise InvalidRequest("use the membership endpoints (join, invite, leave...)")
        if event_type == "m.room.create":
            raise Forbidden("a room has exactly one create event")
        event = await self._append(requester, requester.user_id, room_id, event_type, content,
                                   state_key=state_key)
        return event.event_id

    async def redact_event(self, requester: Requester, room_id: str, event_id: str,
                           reason: str | None, txn_id: str | None) -> str:
        content = {"reason": reason} if reason else {}
        event = await self._append(requester, requester.user_id, room_id, "m.room.redaction",
                                   content, txn_id=txn_id, redacts=event_id)
        return event.event_id

    # --- reading ----------------------------------------------------------------------
    async def visible_upto(self, session: AsyncSession, user_id: str, room_id: str) -> int:
        """The last stream position of ``room_id`` that ``user_id`` may read.

        Members read everything (history visibility "shared"); former members
        read up to the moment they left.  Others are refused.
        """
        await self._room_version(session, room_id)
        row = await store.membership(session, room_id, user_id)
        if row is not None and row.membership == "join":
            return await store.max_stream_ordering(session)
        if row is not None and row.membership in ("leave", "ban") and not row.forgotten:
            return row.stream_ordering
        raise Forbidden(f"{user_id} is not in the room {room_id}")

    async def get_event(self, user_id: str, room_id: str, event_id: str) -> StoredEvent:
        async with self.db.read() as session:
            upto = await self.visible_upto(session, user_id, room_id)
            event = await store.get_event(session, event_id)
        if event is None or event.room_id != room_id or event.stream_ordering > upto:
            raise RoomNotFound(f"unknown event {event_id}")
        return event

    async def room_state(self, user_id: str, room_id: str) -> list[StoredEvent]:
        async with self.db.read() as session:
            upto = await self.visible_upto(session, user_id, room_id)
            events = await store.state_at(session, room_id, upto)
        return sorted(events.values(), key=lambda e: e.stream_ordering)

    async def state_event(self, user_id: str, room_id: str, event_type: str,
                          state_key: str) -> StoredEvent:
        async with self.db.read() as session:
            upto = await self.visible_upto(session, user_id, room_id)
            events = await store.state_at(session, room_id, upto)
        event = events.get((event_type, state_key))
        if event is None:
            raise RoomNotFound(f"no {event_type} state with key {state_key!r}")
        return event

    async def members(self, user_id: str, room_id: str,
                      membership: str | None = None) -> list[StoredEvent]:
        events = await self.room_state(user_id, room_id)
        return [e for e in events if e.type == "m.room.member" and (
            membership is None or (e.pdu.get("content") or {}).get("membership") == membership)]

    async def joined_rooms(self, user_id: str) -> list[str]:
        async with self.db.read() as session:
            rows = await store.memberships_of(session, user_id)
        return sorted(r.room_id for r in rows if r.membership == "join")

    async def messages(self, user_id: str, room_id: str, *, from_position: int | None,
                       to_position: int | None, backwards: bool, limit: int) -> Page:
        """/messages: positions are stream orderings (a token p lies after event p)."""
        async with self.db.read() as session:
            upto = await self.visible_upto(session, user_id, room_id)
            if backwards:
                start = upto if from_position is None else min(from_position, upto)
                floor = to_position if to_position is not None else 0
                events = await store.room_events(session, room_id, after=floor, upto=start,
                                                 limit=limit, newest_first=True)
                more = len(events) == limit
                next_position = events[-1].stream_ordering - 1 if more and events else None
            else:
                start = 0 if from_position is None else from_position
                ceiling = upto if to_position is None else min(to_position, upto)
                events = await store.room_events(session, room_id, after=start, upto=ceiling,
                                                 limit=limit, newest_first=False)
                more = len(events) == limit
                next_position = events[-1].stream_ordering if more and events else None
        return Page(events, start, next_position)

    async def context(self, user_id: str, room_id: str, event_id: str, limit: int,
                      ) -> tuple[list[StoredEvent], StoredEvent, list[StoredEvent],
                                 list[StoredEvent]]:
        """/context (spec 10.9): up to ``limit`` events around one, split before and
        after, and the room state at the event; only what the user may read."""
        async with self.db.read() as session:
            upto = await self.visible_upto(session, user_id, room_id)
            event = await store.get_event(session, event_id)
            if event is None or event.room_id != room_id or event.stream_ordering > upto:
                raise RoomNotFound(f"unknown event {event_id}")
            before_n = limit // 2
            before = await store.room_events(session, room_id, after=0,
                                             upto=event.stream_ordering - 1,
                                             limit=before_n, newest_first=True)
            after = await store.room_events(session, room_id, after=event.stream_ordering,
                                            upto=upto, limit=limit - before_n,
                                            newest_first=False)
            state = await store.state_at(session, room_id, event.stream_ordering)
        return before, event, after, sorted(state.values(), key=lambda e: e.stream_ordering)

    async def is_public(self, room_id: str) -> bool:
        async with self.db.read() as session:
            row = await store.room(session, room_id)
        if row is None:
            raise RoomNotFound(f"unknown room {room_id}")
        return row.is_public

    async def public_rooms(self) -> list[dict[str, Any]]:
        """Rooms published to the room directory (createRoom visibility public)."""
        async with self.db.read() as session:
            room_ids = await store.public_room_ids(session)
            out = []
            for room_id in room_ids:
                state = await store.current_state(session, room_id, [
                    ("m.room.name", ""), ("m.room.topic", ""), ("m.room.canonical_alias", ""),
                    ("m.room.join_rules", "")])
                joined = await store.room_members(session, room_id, "join")

                def field(event_type: str, key: str, st: Any = state) -> Any:
                    event = st.get((event_type, ""))
                    return (event.pdu.get("content") or {}).get(key) if event else None

                entry: dict[str, Any] = {
                    "room_id": room_id, "num_joined_members": len(joined),
                    "world_readable": False, "guest_can_join": False,
                    "join_rule": field("m.room.join_rules", "join_rule") or "invite"}
                for key, (event_type, content_key) in {
                        "name": ("m.room.name", "name"), "topic": ("m.room.topic", "topic"),
                        "canonical_alias": ("m.room.canonical_alias", "alias")}.items():
                    value = field(event_type, content_key)
                    if isinstance(value, str):
                        entry[key] = value
                out.append(entry)
        out.sort(key=lambda r: (-r["num_joined_members"], r["room_id"]))
        return out

    # --- aliases --------------------------------------------------------------------
    async def create_alias(self, requester: Requester, alias: str, room_id: str) -> None:
        try:
            _local, server = parse_room_alias(alias)
        except InvalidIdentifier as exc:
            raise InvalidRequest(str(exc)) from None
        if server != self.server_name:
            raise InvalidRequest(f"aliases here must end in :{self.server_name}")
        async with self.db.write() as session:
            await self._room_version(session, room_id)
            row = await store.membership(session, room_id, requester.user_id)
            if row is None or row.membership != "join":
                raise Forbidden("only members of the room may give it an alias")
            if await alias_store.resolve(session, alias) is not None:
                raise AliasInUse(f"room alias {alias} already exists")
            await alias_store.create(session, alias, room_id, requester.user_id)

    async def delete_alias(self, requester: Requester, alias: str) -> None:
        async with self.db.write() as session:
            found = await alias_store.get(session, alias)
            if found is None:
                raise RoomNotFound(f"unknown room alias {alias}")
            if found.creator != requester.user_id:
                state = {k: e.pdu for k, e in (await store.current_state(
                    session, found.room_id,
                    [("m.room.create", ""), ("m.room.power_levels", "")])).items()}
                levels = power_levels(state)
                if levels.user_level(requester.user_id) < levels.event_level(
                        "m.room.canonical_alias", True):
                    raise Forbidden("only the alias's creator or a moderator may remove it")
            await alias_store.delete(session, alias)

    async def alias_room(self, alias: str) -> str:
        return await self.resolve_room(alias)
