"""One user's messenger data as a whole: read out, erased, expired (issue 17).

The messenger's part of the school's data-protection use cases (GDPR Art. 15,
17, 20; retention), composed by ``conf`` with the mail store's and the
directory's parts:

- ``rooms_of`` / ``events``: the rooms a user is or was in and, page by page,
  the events of each up to where the user may read them (the rule of
  ``RoomReader.visible_upto``: members read all, former members up to leaving);
- ``erase``: devices, tokens, keys, key backups, pushers, filters, account
  data, receipts, reports and uploaded files; every event the user sent is
  redacted (spec: Client-Server API 10.9 "Redactions", the room version's
  algorithm: the event skeleton other servers and the DAG need stays, the
  content goes) and the user leaves every room;
- ``expire_history``: message content older than a cutoff in given rooms
  redacted the same way (class rooms keep one school year).

Redactions here are written straight to storage with a marker instead of a
redaction event: thousands of redaction events would flood the room, and a
leaving user could not send them any more.  Rooms with members on other servers
are the exception when an erased user is still joined there: those servers hold
copies, which only a redaction event reaches (Server-Server API "Transactions"),
so each of the user's events there gets one, in the user's name (the v3+ rule
"own events"), through the writer's federation outbox, before the user leaves.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import Database, affected_rows
from messenger.events.redaction import redact
from messenger.events.room_versions import RoomVersion
from messenger.rooms.errors import MessengerError
from messenger.rooms.lookups import room_version_of
from messenger.rooms.remote_requests import RemoteRefused
from messenger.rooms.service import RoomService
from messenger.storage import devices as device_rows
from messenger.storage import events as store
from messenger.storage import group_rooms
from messenger.storage.events import StoredEvent
from messenger.storage.push_tables import PushActionRow
from messenger.storage.tables import (
    AccountDataRow,
    CrossSigningKeyRow,
    CrossSigningSignatureRow,
    DeviceRow,
    EventRow,
    FilterRow,
    KeyBackupSessionRow,
    KeyBackupVersionRow,
    MediaRow,
    MembershipRow,
    PusherRow,
    ReceiptRow,
    ReportRow,
)

log = logging.getLogger("schulhof.messenger")

PAGE = 500
# ``redacted_by`` of events redacted without a redaction event (no such event id
# exists: clients get no ``redacted_because``, as for an unknown redaction).
ERASED = "$erased:account"
EXPIRED = "$expired:retention"


@dataclass(frozen=True)
class RoomAccess:
    room_id: str
    membership: str
    upto: int  # the last stream position the user may read


@dataclass(frozen=True)
class MediaFile:
    media_id: str
    content_type: str
    upload_name: str | None
    size: int
    path: Path


@dataclass(frozen=True)
class DeviceRecord:
    device_id: str
    display_name: str | None
    last_seen: str | None
    last_seen_ip: str | None


@dataclass(frozen=True)
class MessengerErasure:
    rooms_left: int
    events_redacted: int
    devices: int
    media: int


def _stored(row: EventRow) -> StoredEvent:
    pdu = json.loads(row.json)
    pdu["event_id"] = row.event_id
    return StoredEvent(row.event_id, row.stream_ordering, row.room_id, pdu, row.redacted_by)


def _media_path(root: Path, sha256: str) -> Path:
    return root / sha256[:2] / sha256[2:4] / sha256


async def redact_stored(session: AsyncSession, events: Collection[StoredEvent],
                        marker: str) -> int:
    """Replace each event by its redacted form (the room version's algorithm)."""
    versions: dict[str, RoomVersion] = {}
    for event in events:
        version = versions.get(event.room_id)
        if version is None:
            version = versions[event.room_id] = await room_version_of(session, event.room_id)
        await store.replace_with_redacted(session, event.event_id,
                                          redact(event.pdu, version), marker)
    return len(events)


class MessengerAccountData:
    def __init__(self, db: Database, rooms: RoomService, media_root: Path) -> None:
        self.db = db
        self.rooms = rooms
        self.media_root = media_root

    # --- reading ----------------------------------------------------------------------
    async def rooms_of(self, user_id: str) -> list[RoomAccess]:
        async with self.db.read() as session:
            newest = await store.max_stream_ordering(session)
            rows = await store.memberships_of(session, user_id)
        out = []
        for row in sorted(rows, key=lambda r: r.room_id):
            if row.membership == "join":
                out.append(RoomAccess(row.room_id, row.membership, newest))
            elif row.membership in ("leave", "ban") and not row.forgotten:
                out.append(RoomAccess(row.room_id, row.membership, row.stream_ordering))
        return out

    async def events(self, room_id: str, upto: int, *, page: int = PAGE,
                     ) -> AsyncIterator[StoredEvent]:
        """The room's events up to ``upto`` in stream order, ``page`` per read."""
        after = 0
        while True:
            async with self.db.read() as session:
                batch = await store.room_events(session, room_id, after=after, upto=upto,
                                                limit=page, newest_first=False)
            for event in batch:
                yield event
            if len(batch) < page:
                return
            after = batch[-1].stream_ordering

    async def room_name(self, room_id: str, upto: int) -> str:
        """The room's name (``m.room.name``) as of ``upto``, or ''."""
        async with self.db.read() as session:
            state = await store.state_at(session, room_id, upto)
        event = state.get(("m.room.name", ""))
        name = (event.pdu.get("content") or {}).get("name") if event else None
        return name if isinstance(name, str) else ""

    async def media_of(self, account_id: int) -> list[MediaFile]:
        async with self.db.read() as session:
            rows = (await session.scalars(select(MediaRow).where(
                MediaRow.account_id == account_id).order_by(MediaRow.created_at))).all()
        return [MediaFile(r.media_id, r.content_type, r.upload_name, r.size,
                          _media_path(self.media_root, r.sha256)) for r in rows]

    async def devices_of(self, account_id: int) -> list[DeviceRecord]:
        async with self.db.read() as session:
            rows = await device_rows.list_devices(session, account_id)
        return [DeviceRecord(r.device_id, r.display_name,
                             r.last_seen.isoformat() if r.last_seen else None,
                             r.last_seen_ip) for r in rows]

    # --- erasing ----------------------------------------------------------------------
    async def erase(self, account_id: int, user_id: str) -> MessengerErasure:
        """Everything of the user (Art. 17); see the module docstring."""
        async with self.db.write() as session:
            devices = len(list(await session.scalars(
                select(DeviceRow.device_id).where(DeviceRow.account_id == account_id))))
            # Logged out first: nothing new arrives while the rest goes.
            await device_rows.delete_devices(session, account_id)
            for table in (PusherRow, FilterRow, AccountDataRow, CrossSigningKeyRow,
                          CrossSigningSignatureRow, KeyBackupSessionRow, KeyBackupVersionRow):
                await session.execute(delete(table).where(
                    table.account_id == account_id))
            await session.execute(delete(ReceiptRow).where(ReceiptRow.user_id == user_id))
            await session.execute(delete(PushActionRow).where(PushActionRow.user_id == user_id))
            await session.execute(delete(ReportRow).where(ReportRow.reporter == user_id))
            media = (await session.execute(select(MediaRow.media_id, MediaRow.sha256).where(
                MediaRow.account_id == account_id))).all()
            await session.execute(delete(MediaRow).where(MediaRow.account_id == account_id))
            shared = set((await session.scalars(select(MediaRow.sha256).where(
                MediaRow.sha256.in_({sha for _, sha in media})))).all())
        for sha in {sha for _, sha in media} - shared:
            await asyncio.to_thread(_media_path(self.media_root, sha).unlink, True)
        redacted = await self._redact_on_other_servers(user_id)
        redacted += await self._redact_all_of(user_id)
        left = await self._leave_all(user_id)
        log.info("event=messenger_erased user=%s rooms_left=%d redacted=%d devices=%d "
                 "media=%d", user_id, left, redacted, devices, len(media))
        return MessengerErasure(left, redacted, devices, len(media))

    async def _rooms_shared_with_other_servers(self, user_id: str) -> list[str]:
        """The rooms ``user_id`` is joined to that have joined members elsewhere."""
        ours = f":{self.rooms.server_name}"
        async with self.db.read() as session:
            joined = [r.room_id for r in await store.memberships_of(session, user_id)
                      if r.membership == "join"]
            if not joined:
                return []
            shared = await session.scalars(
                select(MembershipRow.room_id).distinct().where(
                    MembershipRow.room_id.in_(joined), MembershipRow.membership == "join",
                    ~MembershipRow.user_id.endswith(ours, autoescape=True)))
            return sorted(shared.all())

    async def _redact_on_other_servers(self, user_id: str) -> int:
        """A redaction event for each of the user's events in rooms shared with other
        servers (they are sent there through the outbox); 0 without federation."""
        writer = self.rooms.writer
        if writer.outbox is None:
            return 0
        done = 0
        for room_id in await self._rooms_shared_with_other_servers(user_id):
            failed: set[str] = set()
            while True:
                query = select(EventRow.event_id).where(
                    EventRow.room_id == room_id, EventRow.sender == user_id,
                    EventRow.redacted.is_(False), EventRow.type != "m.room.redaction")
                if failed:
                    query = query.where(EventRow.event_id.notin_(failed))
                async with self.db.read() as session:
                    ids = list((await session.scalars(
                        query.order_by(EventRow.stream_ordering).limit(PAGE))).all())
                for event_id in ids:
                    try:
                        await writer.append(None, user_id, room_id, "m.room.redaction", {},
                                            redacts=event_id)
                        done += 1
                    except MessengerError as exc:  # redacted in place below, not sent
                        failed.add(event_id)
                        log.warning("event=erasure_redaction_failed room=%s event=%s "
                                    "error=%s", room_id, event_id, exc)
                if len(ids) < PAGE:
                    break
        return done

    async def _redact_all_of(self, user_id: str) -> int:
        done = 0
        while True:
            async with self.db.write() as session:
                rows = (await session.scalars(select(EventRow).where(
                    EventRow.sender == user_id, EventRow.redacted.is_(False))
                    .order_by(EventRow.stream_ordering).limit(PAGE))).all()
                events = [_stored(r) for r in rows]
                done += await redact_stored(session, events, ERASED)
            if len(rows) < PAGE:
                return done

    async def _leave_all(self, user_id: str) -> int:
        async with self.db.read() as session:
            rows = await store.memberships_of(session, user_id)
        left = 0
        for row in rows:
            if row.membership not in ("join", "invite", "knock"):
                continue
            try:
                # An invitation from another server is declined there (leave_as).
                await self.rooms.leave_as(user_id, row.room_id)
                left += 1
            except (MessengerError, RemoteRefused) as exc:
                # e.g. a room whose rules refuse it, a server that is down: logged, not fatal
                log.warning("event=erasure_leave_failed room=%s user=%s error=%s",
                            row.room_id, user_id, exc)
        return left

    # --- retention --------------------------------------------------------------------
    async def group_room_ids(self, group_ids: Collection[int]) -> list[str]:
        """The rooms the server keeps for these directory groups."""
        async with self.db.read() as session:
            links = await group_rooms.all_links(session)
        return sorted(room for group, room in links.items() if group in set(group_ids))

    async def forget_device_addresses(self, before: dt.datetime) -> int:
        """Devices' last-seen client addresses older than ``before`` are removed."""
        async with self.db.write() as session:
            return affected_rows(await session.execute(update(DeviceRow).where(
                DeviceRow.last_seen_ip.is_not(None),
                (DeviceRow.last_seen < before) | DeviceRow.last_seen.is_(None))
                .values(last_seen_ip=None)))

    async def expire_history(self, room_ids: Collection[str], before_ms: int) -> int:
        """Redact message events (not state) older than ``before_ms`` in ``room_ids``."""
        done = 0
        ids = sorted(room_ids)
        if not ids:
            return 0
        while True:
            async with self.db.write() as session:
                rows = (await session.scalars(select(EventRow).where(
                    EventRow.room_id.in_(ids), EventRow.state_key.is_(None),
                    EventRow.redacted.is_(False), EventRow.type != "m.room.redaction",
                    EventRow.origin_server_ts < before_ms)
                    .order_by(EventRow.stream_ordering).limit(PAGE))).all()
                events = [_stored(r) for r in rows]
                done += await redact_stored(session, events, EXPIRED)
            if len(rows) < PAGE:
                return done
