"""Events from other servers into rooms (Server-Server API "Checks performed on
receipt of a PDU", "Rejection", "Soft failure", "Retrieving events").

Each received PDU is checked in the spec's order: the event format (1), the
origin's signature (2), the content hash (3, redacted when wrong), the auth
rules against its own auth events (4, else *rejected*), against the state
before it, resolved over its prev_events (5, else rejected), and against the
room's current state (6, else *soft-failed*: kept, never shown, never a
prev_event).  Accepted events join the timeline with their state group; the
room's forward extremities and current state (state resolution v2 over the
extremities) move on in the same transaction.

Unknown auth events are fetched with ``event_auth``, unknown prev_events with
``get_missing_events`` (bounded); where history stays missing the state of the
prev_events we have (or the current state) stands in for it, so a room never
stalls on a gap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.matrix.received import PendingRecord
from messenger.events.hashing import event_id_for, wire_form
from messenger.events.identifiers import room_id_of_create, server_of
from messenger.events.room_versions import V10, RoomVersion, UnsupportedRoomVersion, room_version
from messenger.events.signing import EventSignatureError, KeyLookup, check_received
from messenger.rooms import dag_state
from messenger.rooms.auth import check_event
from messenger.rooms.errors import AuthRuleViolation, Forbidden, RoomNotFound
from messenger.rooms.lookups import check_server_acl
from messenger.rooms.pdu_checks import MalformedPdu, check_against_auth_events, check_format
from messenger.rooms.received_redactions import (
    PendingRedactions,
    apply_earlier_redactions,
    apply_received_redaction,
)
from messenger.rooms.remote_requests import RemoteRefused, RemoteRooms
from messenger.rooms.state import auth_event_ids, auth_state_keys
from messenger.rooms.writer import RoomWriter, Transaction
from messenger.storage import dag, push_actions
from messenger.storage import events as store
from messenger.storage.events import StoredEvent
from messenger.storage.tables import MembershipRow

log = logging.getLogger("schulhof.messenger.federation")

MAX_MISSING_EVENTS = 20  # per get_missing_events round, as Synapse asks
MAX_FETCHED_AUTH_EVENTS = 500


class NotInRoom(Exception):
    """This server has no joined member in the event's room: it does not process it."""


@dataclass(frozen=True)
class Checked:
    """A PDU that passed the format, signature and hash checks."""

    version: RoomVersion
    pdu: dict[str, Any]  # with ``event_id``
    event_id: str

    @property
    def room_id(self) -> str:
        return str(self.pdu["room_id"])


@dataclass
class Outcome:
    """What became of a PDU: ``accepted``, ``known``, ``rejected`` or ``soft_failed``."""

    status: str
    reason: str = ""
    event: StoredEvent | None = None
    state_before: dict[tuple[str, str], str] = field(default_factory=dict)


@dataclass
class _BatchReads:
    """What one transaction's write has read once for all its PDUs: which of them
    are in the timeline, which are outliers (and as what), and per room the current
    state as PDUs, kept up to date in memory as events of the batch move it (a room
    whose state moved some other way is dropped and read again).  ``head``: per
    room, its one forward extremity and that event's state group, as the last
    event of the batch that followed it left them (same rule).

    ``auth``: the events the batch names as auth events, as ``events_by_id`` reads
    them (an event a redaction changes is dropped; one not here is read when
    named).  ``redactions``: the stored redactions that may name the batch's
    events (None: read per event).  ``position``: the last stream position this
    transaction gave out (None: none yet); positions are the maximum plus one,
    and the writer's stream lock, held to the commit, keeps them ours.
    ``moved``: per room, the extremities the batch's linear events replaced and
    the last of them, written once (``flush_extremities``) instead of per event."""

    timeline: set[str]
    outliers: dict[str, tuple[str, dict[str, Any]]]
    state: dict[str, dict[tuple[str, str], Mapping[str, Any]]] = field(default_factory=dict)
    head: dict[str, tuple[str, int]] = field(default_factory=dict)
    auth: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    redactions: PendingRedactions | None = None
    position: int | None = None
    first_position: int | None = None  # the maximum when the transaction began
    moved: dict[str, tuple[list[str], str]] = field(default_factory=dict)

    @classmethod
    async def read(cls, session: AsyncSession, event_ids: list[str], named: set[str]
                   ) -> _BatchReads:
        """The reads for ``event_ids`` and the auth events they name, in two queries
        (timeline, then outliers)."""
        wanted = set(event_ids) | named
        timeline = {i: e.pdu for i, e in (await store.get_events(session, wanted)).items()}
        outliers = await dag.outliers(session, wanted - set(timeline))
        auth: dict[str, Mapping[str, Any]] = {i: p for i, p in timeline.items() if i in named}
        auth.update({i: p for i, (status, p) in outliers.items()
                     if i in named and status != "rejected"})
        return cls(set(event_ids) & set(timeline),
                   {i: outliers[i] for i in event_ids if i in outliers}, auth=auth)

    @property
    def stored_any(self) -> bool:
        return self.position is not None and self.position != self.first_position

    async def newest(self, session: AsyncSession) -> int:
        """The stream's maximum in this transaction (read once, then counted here)."""
        if self.position is None:
            self.position = self.first_position = await store.max_stream_ordering(session)
        return self.position

    async def next_position(self, session: AsyncSession) -> int:
        self.position = await self.newest(session) + 1
        return self.position

    async def auth_events(self, session: AsyncSession, event_ids: list[str]
                          ) -> dict[str, Mapping[str, Any]]:
        missing = [i for i in event_ids if i not in self.auth]
        if missing:
            self.auth.update(await dag_state.events_by_id(session, missing))
        return {i: self.auth[i] for i in event_ids if i in self.auth}

    def redacted(self, event: StoredEvent | None) -> None:
        """``event`` was stored redacted: what was read of it is stale."""
        if event is not None:
            self.auth.pop(event.event_id, None)
            if self.redactions is not None:
                self.redactions.replaced(event)

    async def flush_extremities(self, session: AsyncSession) -> None:
        for room_id, (removed, last) in self.moved.items():
            await dag.move_extremities(session, room_id, removed, [last])
        self.moved.clear()


async def joined_servers(session: AsyncSession, room_id: str) -> set[str]:
    rows = await session.scalars(select(MembershipRow.user_id).where(
        MembershipRow.room_id == room_id, MembershipRow.membership == "join"))
    return {server_of(u) for u in rows}


def pdu_for_wire(pdu: Mapping[str, Any]) -> dict[str, Any]:
    """A stored PDU as other servers get it (no ``event_id`` in v4+ formats, no
    ``room_id`` on a room version 12 create event)."""
    return wire_form(pdu)


def _answer(refused: dict[str, dict[str, Any]],
            outcomes: list[tuple[str, Checked, Outcome]]) -> dict[str, dict[str, Any]]:
    """The answer per event id: the PDUs refused before storage, then the outcomes."""
    out = dict(refused)
    for key, _, outcome in outcomes:
        out[key] = {"error": outcome.reason} if outcome.status == "rejected" else {}
    return out


def _event_id_or_invalid(pdu: Mapping[str, Any], version: RoomVersion = V10) -> str:
    try:
        return event_id_for({k: v for k, v in pdu.items() if k != "event_id"}, version)
    except (TypeError, ValueError, AttributeError):
        return "$invalid"


class RemoteEvents:
    def __init__(self, writer: RoomWriter, server_name: str, key_of: KeyLookup,
                 remote: RemoteRooms | None) -> None:
        self._writer = writer
        self.server_name = server_name
        self._key_of = key_of
        self._remote = remote
        # The servers this school federates with (set by the room service); None: any.
        self.federates_with: Callable[[str], bool] | None = None

    # --- checks 1-3 -------------------------------------------------------------------
    async def check(self, pdu: Mapping[str, Any], version: RoomVersion,
                    room_id: str | None = None) -> Checked:
        """Format, signatures, hashes; raises ``MalformedPdu`` or ``EventSignatureError``."""
        body = {k: v for k, v in pdu.items() if k != "event_id"}
        check_format(body, room_id, version)
        kept, event_id = await check_received(body, version, self._key_of)
        if version.room_id_is_create_hash and kept.get("type") == "m.room.create" \
                and kept.get("state_key") == "":
            # In memory (and stored) the create event carries the room id its hash is.
            kept = {**kept, "room_id": room_id_of_create(event_id)}
        return Checked(version, {**kept, "event_id": event_id}, event_id)

    async def room_version_of(self, room_id: str, *, resident: bool = True) -> RoomVersion:
        async with self._writer.db.read() as session:
            return await self._room_version_in(session, room_id, resident)

    async def _room_version_in(self, session: AsyncSession, room_id: str, resident: bool
                               ) -> RoomVersion:
        row = await store.room(session, room_id)
        if row is None:
            raise NotInRoom(f"{room_id} is not known here")
        if resident and self.server_name not in await joined_servers(session, room_id):
            raise NotInRoom(f"{self.server_name} is not in {room_id}")
        try:
            return room_version(row.room_version)
        except UnsupportedRoomVersion as exc:
            raise NotInRoom(str(exc)) from None

    # --- a PDU of a transaction ------------------------------------------------------
    async def acl_denies(self, room_id: str, server: str) -> str:
        """Why the room's server ACL refuses ``server``; "" if it does not."""
        async with self._writer.db.read() as session:
            return await self._acl_denies_in(session, room_id, server)

    @staticmethod
    async def _acl_denies_in(session: AsyncSession, room_id: str, server: str) -> str:
        try:
            await check_server_acl(session, room_id, server)
        except Forbidden as exc:
            log.info("event=federation_acl_denied origin=%s room=%s", server, room_id)
            return str(exc)
        return ""

    async def _rooms_admitting(self, origin: str, room_ids: set[str]
                               ) -> tuple[dict[str, RoomVersion | None], dict[str, str]]:
        """Per room of a transaction its version (None: not processed here, the spec's
        "servers only process events of rooms they are in") and why its server ACL
        refuses ``origin`` ("": it does not); one read for all."""
        versions: dict[str, RoomVersion | None] = {}
        denied: dict[str, str] = {}
        if not room_ids:
            return versions, denied
        async with self._writer.db.read() as session:
            for room_id in sorted(room_ids):
                try:
                    versions[room_id] = await self._room_version_in(session, room_id, True)
                except NotInRoom as exc:
                    log.debug("event=federation_pdu_ignored origin=%s reason=%r", origin,
                              str(exc))
                    versions[room_id] = None
                    continue
                denied[room_id] = await self._acl_denies_in(session, room_id, origin)
        return versions, denied

    async def receive_all(self, origin: str, pdus: list[Mapping[str, Any]],
                          record: PendingRecord | None = None) -> dict[str, dict[str, Any]]:
        """The PDUs of one transaction: checked one by one, what they name and we lack
        fetched, then stored in one write transaction (one commit for the lot, with
        the transaction's ``record`` if given); should that fail, each goes alone
        (and the record is not written here).  The answer per event id."""
        results: dict[str, dict[str, Any]] = {}
        # room -> its version, and why the origin may not send to it ("": may)
        versions, denied = await self._rooms_admitting(origin, {
            p["room_id"] for p in pdus if isinstance(p.get("room_id"), str)})
        ready: list[tuple[str, Checked]] = []
        for pdu in pdus:
            room_id = pdu.get("room_id")
            if not isinstance(room_id, str):
                results[_event_id_or_invalid(pdu)] = {"error": "room_id is missing"}
                continue
            version = versions[room_id]
            if version is None:  # the spec: servers only process events of rooms they are in
                results[_event_id_or_invalid(pdu)] = {}
                continue
            if denied[room_id]:  # the spec: such PDUs are ignored, with an error each
                results[_event_id_or_invalid(pdu, version)] = {"error": denied[room_id]}
                continue
            try:
                checked = await self.check(pdu, version)
            except (MalformedPdu, EventSignatureError) as exc:
                log.info("event=federation_pdu_refused origin=%s reason=%r", origin, str(exc))
                results[_event_id_or_invalid(pdu, version)] = {"error": str(exc)}
                continue
            # The id of the PDU as received: its reference hash is over the redacted
            # form, so the one ``check`` gave (of the PDU, or of it redacted) is it.
            ready.append((checked.event_id, checked))
        in_batch = {c.event_id for _, c in ready}
        known: set[str] | None = None
        for _, checked in ready:
            if known is None:  # one read for the lot, again after a fetch stored some
                async with self._writer.db.read() as session:
                    known = await dag.known_events(session, {
                        i for _, c in ready
                        for i in (c.event_id, *auth_event_ids(c.pdu), *c.pdu["prev_events"])})
            if await self._fetch_what_is_missing(origin, checked, in_batch, known):
                known = None
        try:
            async with self._writer.transaction() as write:
                ids = [c.event_id for _, c in ready]
                reads = await _BatchReads.read(write.session, ids, {
                    a for _, c in ready for a in auth_event_ids(c.pdu)})
                reads.redactions = await PendingRedactions.read(
                    write.session, ids, {c.room_id: c.version for _, c in ready})
                push_actions.hold(write.session)
                outcomes = []
                done: dict[str, Outcome] = {}
                for key, checked in ready:
                    if checked.event_id in done:  # the same event twice: judged once
                        outcomes.append((key, checked, done[checked.event_id]))
                        continue
                    outcome = await self._persist(write, checked, frozenset(), None, reads)
                    done[checked.event_id] = outcome
                    outcomes.append((key, checked, outcome))
                await reads.flush_extremities(write.session)
                await push_actions.write_held(write.session)
                if record is not None:
                    record.write_in(write.session, {"pdus": _answer(results, outcomes)})
            if record is not None:
                record.written = True
        except Exception:
            log.exception("event=federation_batch_failed origin=%s count=%d", origin,
                          len(ready))
            outcomes = []
            for key, checked in ready:
                try:
                    outcomes.append((key, checked, await self.persist(checked)))
                except Exception:
                    log.exception("event=federation_pdu_failed origin=%s", origin)
                    outcomes.append((key, checked, Outcome("rejected", "could not process")))
        for _, checked, outcome in outcomes:
            if outcome.status in ("rejected", "soft_failed"):
                log.info("event=federation_pdu_%s origin=%s id=%s reason=%r", outcome.status,
                         origin, checked.event_id, outcome.reason)
        return _answer(results, outcomes)

    async def _fetch_what_is_missing(self, origin: str, checked: Checked,
                                     in_batch: set[str], stored: set[str]) -> bool:
        """Fetch the auth chain and missing prev_events of ``checked``; ``stored``:
        the ids (of the batch and what they name) this server has.  True if it
        fetched (then what is stored has changed)."""
        if self._remote is None or checked.event_id in stored:
            return False
        known = stored | in_batch
        fetched = False
        if set(auth_event_ids(checked.pdu)) - known:
            await self.fetch_auth_chain(origin, checked)
            fetched = True
        if set(checked.pdu["prev_events"]) - known:
            await self._fetch_missing(origin, checked)
            fetched = True
        return fetched

    async def process(self, origin: str, checked: Checked, *, fetch_missing: bool,
                      relay_to: frozenset[str] = frozenset()) -> Outcome:
        """Checks 4-6 and storage, after fetching what the event names and we lack."""
        async with self._writer.db.read() as session:
            if await dag.known_events(session, [checked.event_id]):
                return Outcome("known")
            missing_auth = set(auth_event_ids(checked.pdu)) - await dag.known_events(
                session, auth_event_ids(checked.pdu))
            missing_prev = set(checked.pdu["prev_events"]) - await dag.known_events(
                session, checked.pdu["prev_events"])
        if missing_auth and self._remote is not None:
            await self.fetch_auth_chain(origin, checked)
        if missing_prev and fetch_missing and self._remote is not None:
            await self._fetch_missing(origin, checked)
        return await self.persist(checked, relay_to=relay_to)

    async def fetch_auth_chain(self, origin: str, checked: Checked) -> None:
        assert self._remote is not None
        try:
            chain = await self._remote.event_auth(origin, checked.room_id, checked.event_id)
        except RemoteRefused as exc:
            log.info("event=federation_event_auth_failed origin=%s reason=%r", origin, str(exc))
            return
        await self.store_outliers(chain[:MAX_FETCHED_AUTH_EVENTS], checked.version,
                                  checked.room_id)

    async def _fetch_missing(self, origin: str, checked: Checked) -> None:
        assert self._remote is not None
        async with self._writer.db.read() as session:
            earliest = list(await dag.forward_extremities(session, checked.room_id))
        try:
            events = await self._remote.get_missing_events(
                origin, checked.room_id, earliest, [checked.event_id], MAX_MISSING_EVENTS, 0)
        except RemoteRefused as exc:
            log.info("event=federation_missing_events_failed origin=%s reason=%r", origin,
                     str(exc))
            return
        found = []
        for pdu in events[:MAX_MISSING_EVENTS]:
            if not isinstance(pdu, dict):
                continue
            try:
                found.append(await self.check(pdu, checked.version, checked.room_id))
            except (MalformedPdu, EventSignatureError) as exc:
                log.info("event=federation_missing_event_refused reason=%r", str(exc))
        for earlier in sorted(found, key=lambda c: (c.pdu["depth"], c.event_id)):
            await self.process(origin, earlier, fetch_missing=False)

    async def store_outliers(self, pdus: list[Any], version: RoomVersion, room_id: str
                             ) -> dict[str, Checked]:
        """Events given as an auth chain or state: checked (format, signature, auth
        against their own auth events, in depth order) and kept as outliers or as
        rejected.  Returns the ones that passed, by id."""
        checked: dict[str, Checked] = {}
        for pdu in pdus:
            if not isinstance(pdu, dict):
                continue
            try:
                c = await self.check(pdu, version, room_id)
            except (MalformedPdu, EventSignatureError) as exc:
                log.info("event=federation_outlier_refused reason=%r", str(exc))
                continue
            checked[c.event_id] = c
        passed: dict[str, Checked] = {}
        async with self._writer.db.write() as session:
            known = await dag_state.events_by_id(session, {
                a for c in checked.values() for a in auth_event_ids(c.pdu)})
            for c in sorted(checked.values(), key=lambda c: (c.pdu["depth"], c.event_id)):
                auth = {**known, **{i: p.pdu for i, p in passed.items()}}
                try:
                    check_against_auth_events(c.pdu, auth, version)
                except AuthRuleViolation as exc:
                    await dag.insert_outlier(session, c.pdu, c.event_id, "rejected", str(exc))
                    continue
                passed[c.event_id] = c
                if not await dag.known_events(session, [c.event_id]):
                    await dag.insert_outlier(session, c.pdu, c.event_id, "outlier")
        return passed

    # --- checks 4-6 and storage --------------------------------------------------------
    async def persist(self, checked: Checked, *, relay_to: frozenset[str] = frozenset(),
                      state_before: dict[tuple[str, str], str] | None = None) -> Outcome:
        """Judge and store ``checked`` under the writer's lock."""
        async with self._writer.transaction() as write:
            reads = _BatchReads(set(await dag.timeline_events(write.session,
                                                              [checked.event_id])),
                                await dag.outliers(write.session, [checked.event_id]))
            outcome = await self._persist(write, checked, relay_to, state_before, reads)
            await reads.flush_extremities(write.session)
            return outcome

    async def _persist(self, write: Transaction, checked: Checked, relay_to: frozenset[str],
                       given_before: dict[tuple[str, str], str] | None,
                       reads: _BatchReads) -> Outcome:
        session = write.session
        pdu, room_id, version = checked.pdu, checked.room_id, checked.version
        if checked.event_id in reads.timeline:
            return Outcome("known")
        outliers = ({checked.event_id: reads.outliers[checked.event_id]}
                    if checked.event_id in reads.outliers else {})
        if outliers and outliers[checked.event_id][0] != "outlier":
            return Outcome("known")
        auth = await reads.auth_events(session, auth_event_ids(pdu))
        try:
            check_against_auth_events(pdu, auth, version)
        except AuthRuleViolation as exc:
            await dag.insert_outlier(session, pdu, checked.event_id, "rejected", str(exc))
            return Outcome("rejected", f"auth events: {exc}")
        if given_before is None:
            linear = await self._persist_linear(write, checked, relay_to, bool(outliers),
                                                reads)
            if linear is not None:
                return linear
        # The general path may move the current state and the extremities (and reads
        # the latter).
        await reads.flush_extremities(session)
        reads.state.pop(room_id, None)
        reads.head.pop(room_id, None)
        # Step 5: the state before the event, resolved over its prev_events.
        prev_states: list[dict[tuple[str, str], str]] = []
        prev_groups: list[int | None] = []
        for prev in pdu["prev_events"]:
            state = await dag_state.state_after(session, room_id, prev)
            if state is not None:
                prev_states.append(state)
                # A soft-failed prev event has a state but no group.
                prev_groups.append((await dag.state_groups_of(session, [prev]))
                                   .get(prev, (None, 0))[0])
        current = await dag_state.current_state_ids(session, room_id)
        if given_before is not None:
            before = dict(given_before)
        else:
            before = await dag_state.resolve(session, version, prev_states or [current])
        keys = auth_state_keys(pdu["type"], pdu["sender"], pdu.get("state_key"),
                               pdu["content"])
        try:
            check_event(pdu, await self._state_for(session, before, keys), version)
        except AuthRuleViolation as exc:
            await dag.insert_outlier(session, pdu, checked.event_id, "rejected", str(exc))
            return Outcome("rejected", f"state before the event: {exc}")
        # Step 6: soft failure against the current state.
        try:
            check_event(pdu, await self._state_for(session, current, keys), version)
        except AuthRuleViolation as exc:
            await dag.insert_outlier(session, pdu, checked.event_id, "soft_failed", str(exc))
            return Outcome("soft_failed", str(exc))
        if outliers:
            await dag.drop_outlier(session, checked.event_id)
        after = dict(before)
        state_key = pdu.get("state_key")
        if isinstance(state_key, str):
            after[(pdu["type"], state_key)] = checked.event_id
        group = await self._group(session, room_id, before, after, prev_states, prev_groups,
                                  checked.event_id)
        position = await reads.next_position(session)
        event = await store.insert_event(session, pdu, checked.event_id, position,
                                         state_group=group, update_state=False)
        event = await self._redact_if_named(session, event, version, reads)
        if self._writer.event_stored is not None:
            await self._stored(session, event, await dag_state.events_by_id(
                session, before.values()), before)
        extremities = await dag.forward_extremities(session, room_id)
        removed = [p for p in pdu["prev_events"] if p in extremities]
        await dag.move_extremities(session, room_id, removed, [checked.event_id])
        others = set(extremities) - set(removed) - {checked.event_id}
        states = [after]
        for other in sorted(others):
            state = await dag_state.state_after(session, room_id, other)
            if state is not None:
                states.append(state)
        new_current = await dag_state.resolve(session, version, states)
        await dag_state.set_current_state(session, room_id, new_current, position)
        if relay_to and self._writer.outbox is not None:
            await self._writer.outbox.add(session, relay_to, event)
        redacted = await apply_received_redaction(session, event, version)
        reads.redacted(redacted)
        write.publish(event, None, redacted)
        write.forget_head(room_id)
        return Outcome("accepted", event=event, state_before=before)

    async def _persist_linear(self, write: Transaction, checked: Checked,
                              relay_to: frozenset[str], was_outlier: bool,
                              reads: _BatchReads) -> Outcome | None:
        """The common case without a fork: the event follows the room's one forward
        extremity, whose state group is the current state.  Then the state before
        the event *is* the current state (steps 5 and 6 are one check), its state
        group is the extremity's (or one delta on it) and the current state moves by
        at most the event itself: no resolution, no full state read.  None: not this
        case, the general path decides."""
        session = write.session
        pdu, room_id, version = checked.pdu, checked.room_id, checked.version
        prevs = pdu["prev_events"]
        head = reads.head.get(room_id)
        if head is not None:
            if list(prevs) != [head[0]]:
                return None
            prev_group: int | None = head[1]
        else:
            # Before this transaction stored anything, the writer's head of the room
            # (kept in memory between transactions) has its extremities and current
            # state; after, the database does.
            room_head = None
            if not reads.stored_any:
                try:
                    room_head = await self._writer.head(write, room_id,
                                                        await reads.newest(session))
                except RoomNotFound:
                    pass
            extremities = room_head.extremities if room_head is not None else \
                await dag.forward_extremities(session, room_id)
            if len(prevs) != 1 or set(prevs) != set(extremities):
                return None
            prev_group = (await dag.state_groups_of(session, prevs)).get(prevs[0],
                                                                          (None, 0))[0]
            if room_head is not None and prev_group is not None:
                reads.state[room_id] = dict(room_head.state)
        if prev_group is None:
            return None
        keys = auth_state_keys(pdu["type"], pdu["sender"], pdu.get("state_key"),
                               pdu["content"])
        # The state before the event is the current state (read before the insert moves
        # it): once per room and batch, then moved on in memory.
        state = reads.state.get(room_id)
        if state is None:
            state = {k: e.pdu for k, e in
                     (await store.current_state(session, room_id)).items()}
            reads.state[room_id] = state
        current = {k: state[k] for k in keys if k in state}
        try:
            check_event(pdu, current, version)
        except AuthRuleViolation as exc:
            await dag.insert_outlier(session, pdu, checked.event_id, "rejected", str(exc))
            return Outcome("rejected", f"state before the event: {exc}")
        if was_outlier:
            await dag.drop_outlier(session, checked.event_id)
        group = prev_group
        state_key = pdu.get("state_key")
        if isinstance(state_key, str):
            key = (pdu["type"], state_key)
            after = await dag.state_of_group(session, prev_group)
            after[key] = checked.event_id
            group = await dag.new_state_group(session, room_id, after, prev_group=prev_group,
                                              delta={key: checked.event_id})
        state_before = dict(state) if self._writer.event_stored is not None else {}
        position = await reads.next_position(session)
        event = await store.insert_event(session, pdu, checked.event_id, position,
                                         state_group=group, flush=False)
        event = await self._redact_if_named(session, event, version, reads)
        await self._stored(session, event, None, state_before)
        # The extremity moves once for the batch's run of events in this room.
        removed = reads.moved[room_id][0] if room_id in reads.moved else list(prevs)
        reads.moved[room_id] = (removed, checked.event_id)
        if relay_to and self._writer.outbox is not None:
            await self._writer.outbox.add(session, relay_to, event)
        redacted = await apply_received_redaction(session, event, version)
        reads.redacted(redacted)
        write.publish(event, None, redacted)
        if isinstance(state_key, str) or pdu["type"] == "m.room.redaction":
            # The writer's head follows a message (it moves the extremity; state and
            # state group stay); a state event's new group it does not know.
            write.forget_head(room_id)
        reads.head[room_id] = (checked.event_id, group)
        if redacted is not None or pdu["type"] == "m.room.redaction":
            reads.state.pop(room_id, None)  # a state event's content may have changed
        elif isinstance(state_key, str):
            state[(pdu["type"], state_key)] = event.pdu
        return Outcome("accepted", event=event)

    @staticmethod
    async def _redact_if_named(session: AsyncSession, event: StoredEvent,
                               version: RoomVersion, reads: _BatchReads) -> StoredEvent:
        """``event`` just inserted, redacted if a redaction stored before names it; then
        a later event of the batch may be redacted by it (if it is a redaction)."""
        candidates = reads.redactions.naming(event) if reads.redactions is not None else None
        out = await apply_earlier_redactions(session, event, version, candidates)
        if out is not event:
            reads.redacted(out)
        if reads.redactions is not None:
            reads.redactions.stored(out)
        return out

    async def _stored(self, session: AsyncSession, event: StoredEvent,
                      by_id: Mapping[str, Mapping[str, Any]] | None,
                      state: Mapping[tuple[str, str], Any]) -> None:
        """The writer's ``event_stored`` hook (unread counts, who is pushed) for a
        received event, as for one made here: a remote user's message notifies local
        members.  ``state``: the state before the event, as pdus, or as event ids
        resolved through ``by_id``."""
        if self._writer.event_stored is None:
            return
        pdus = state if by_id is None else {k: by_id[i] for k, i in state.items() if i in by_id}
        await self._writer.event_stored(session, event, pdus)

    @staticmethod
    async def _state_for(session: AsyncSession, state: Mapping[tuple[str, str], str],
                         keys: list[tuple[str, str]]) -> dict[tuple[str, str], Mapping[str, Any]]:
        wanted = {k: state[k] for k in keys if k in state}
        events = await dag_state.events_by_id(session, wanted.values())
        return {k: events[i] for k, i in wanted.items() if i in events}

    @staticmethod
    async def _group(session: AsyncSession, room_id: str, before: dict[tuple[str, str], str],
                     after: dict[tuple[str, str], str],
                     prev_states: list[dict[tuple[str, str], str]],
                     prev_groups: list[int | None], event_id: str) -> int:
        """The state group after the event: the prev event's own when nothing
        changed, a delta on it when one key did, else a full map."""
        if len(prev_states) == 1 and prev_groups[0] is not None and before == prev_states[0]:
            if after == before:
                return prev_groups[0]
            delta = {k: v for k, v in after.items() if before.get(k) != v}
            return await dag.new_state_group(session, room_id, after,
                                             prev_group=prev_groups[0], delta=delta)
        return await dag.new_state_group(session, room_id, after)
