"""History from before this server joined a room (Server-Server API "Backfilling
and retrieving missing events"): when a user pages back with ``/messages`` past
the oldest event held here, and the room's history visibility lets them see
what came before, the events before it are asked of the other servers in the
room with ``GET /backfill``.

What comes back is checked as any received event (format, signatures, hashes;
the auth rules against its own auth events, fetched with ``/event_auth`` when
missing) and stored below every position held so far (zero and negative
positions, the older the lower): /messages pages on into it, while /sync, which
only looks forward, never hands it out as new.  It changes no current state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from messenger.events.room_versions import RoomVersion
from messenger.events.signing import EventSignatureError
from messenger.rooms import dag_state
from messenger.rooms.errors import AuthRuleViolation
from messenger.rooms.pdu_checks import MalformedPdu, check_against_auth_events
from messenger.rooms.received_redactions import (
    apply_earlier_redactions,
    apply_received_redaction,
)
from messenger.rooms.receiving import Checked, RemoteEvents, joined_servers
from messenger.rooms.remote_requests import RemoteRefused, RemoteRooms
from messenger.rooms.state import auth_event_ids
from messenger.rooms.writer import RoomWriter
from messenger.storage import dag
from messenger.storage import events as store

log = logging.getLogger("schulhof.messenger.federation")

MAX_BACKFILL = 100  # events asked for at once
OLDEST_LOOKED_AT = 200  # the room's oldest events whose missing predecessors are asked for
MAX_START_EVENTS = 20


class Backfiller:
    def __init__(self, writer: RoomWriter, events: RemoteEvents, remote: RemoteRooms,
                 allowed: Callable[[str], bool]) -> None:
        self._writer = writer
        self._events = events
        self._remote = remote
        self._allowed = allowed
        self.server_name = events.server_name

    async def _gaps(self, room_id: str) -> tuple[list[str], list[str]]:
        """The events before the oldest ones held here that are missing (the
        backward extremities), and the other servers in the room to ask."""
        async with self._writer.db.read() as session:
            oldest = await store.oldest_room_events(session, room_id, OLDEST_LOOKED_AT)
            named = {p for e in oldest for p in e.pdu.get("prev_events") or []
                     if isinstance(p, str)}
            held = set(await store.get_events(session, named))
            servers = await joined_servers(session, room_id)
        missing = sorted(named - held)[:MAX_START_EVENTS]
        return missing, sorted(s for s in servers - {self.server_name} if self._allowed(s))

    async def fill(self, room_id: str, limit: int) -> int:
        """Fetch and store up to ``limit`` events from before the oldest held here;
        how many were stored (0: nothing is missing, or no server could help)."""
        if self._writer.server_name is None:
            return 0
        missing, servers = await self._gaps(room_id)
        if not missing or not servers:
            return 0
        version = await self._events.room_version_of(room_id, resident=False)
        for server in servers:
            try:
                pdus = await self._remote.backfill(server, room_id, missing,
                                                   min(max(limit, 1), MAX_BACKFILL))
            except RemoteRefused as exc:
                log.info("event=backfill_failed room=%s server=%s reason=%r", room_id,
                         server, str(exc))
                continue
            stored = await self._store(server, room_id, version, pdus)
            if stored:
                log.info("event=backfilled room=%s server=%s events=%d", room_id, server,
                         stored)
                return stored
        return 0

    async def _store(self, origin: str, room_id: str, version: RoomVersion,
                     pdus: list[object]) -> int:
        checked: dict[str, Checked] = {}
        for pdu in pdus[:MAX_BACKFILL]:
            if not isinstance(pdu, dict):
                continue
            try:
                c = await self._events.check(pdu, version, room_id)
            except (MalformedPdu, EventSignatureError) as exc:
                log.info("event=backfill_event_refused origin=%s reason=%r", origin, str(exc))
                continue
            checked[c.event_id] = c
        async with self._writer.db.read() as session:
            held = set(await store.get_events(session, checked))
            auth_ids = {a for c in checked.values() for a in auth_event_ids(c.pdu)}
            known_auth = await dag.known_events(session, auth_ids)
        fresh = [c for i, c in checked.items() if i not in held]
        for c in fresh:
            if set(auth_event_ids(c.pdu)) - known_auth - set(checked):
                await self._events.fetch_auth_chain(origin, c)
                async with self._writer.db.read() as session:
                    known_auth = await dag.known_events(session, auth_ids)
        ordered = sorted(fresh, key=lambda c: (c.pdu["depth"], c.pdu["origin_server_ts"],
                                               c.event_id))
        stored = 0
        async with self._writer.transaction() as write:
            session = write.session
            # Below everything held: the newest of this batch just under the lowest.
            position = min(await store.min_stream_ordering(session), 1) - 1 - len(ordered)
            auth = await dag_state.events_by_id(session, auth_ids)
            auth.update({c.event_id: c.pdu for c in ordered})
            for c in ordered:
                position += 1
                if await store.get_event(session, c.event_id) is not None:
                    continue
                try:
                    check_against_auth_events(c.pdu, auth, c.version)
                except AuthRuleViolation as exc:
                    log.info("event=backfill_event_rejected origin=%s id=%s reason=%r",
                             origin, c.event_id, str(exc))
                    continue
                await dag.drop_outlier(session, c.event_id)
                event = await store.insert_event(session, c.pdu, c.event_id, position,
                                                 update_state=False)
                # History comes newest first: a redaction is often here before its target.
                await apply_received_redaction(session, event, c.version)
                await apply_earlier_redactions(session, event, c.version)
                stored += 1
        return stored
