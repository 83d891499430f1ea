"""Reports of content to the school's admins (spec: Client-Server API v1.13
"Reporting content": POST /rooms/{roomId}/report/{eventId} and /rooms/{roomId}/report).

A report is stored for the admins (``matrix_reports``) and logged without its
reason (a reason may quote the reported message).  A user may report only what
they can see: an event they may read, a room they are or were in or are invited to.
"""

from __future__ import annotations

import logging

from directory.db import Database
from messenger.rooms.errors import Forbidden, InvalidRequest, RoomNotFound
from messenger.rooms.reading import RoomReader
from messenger.storage import events as store
from messenger.storage.tables import ReportRow

log = logging.getLogger("schulhof.messenger")

MAX_REASON_CHARS = 2000


class Reports:
    def __init__(self, db: Database, reader: RoomReader) -> None:
        self._db = db
        self._reader = reader

    async def report_event(self, reporter: str, room_id: str, event_id: str,
                           reason: str | None, score: int | None) -> None:
        _check_reason(reason)
        if score is not None and not -100 <= score <= 0:
            raise InvalidRequest("score must be between -100 and 0")
        try:
            await self._reader.get_event(reporter, room_id, event_id)
        except (Forbidden, RoomNotFound) as exc:  # not a member, unknown room or event alike
            raise RoomNotFound("unknown event") from exc
        await self._store(ReportRow(room_id=room_id, event_id=event_id, reporter=reporter,
                                    reason=reason, score=score))

    async def report_room(self, reporter: str, room_id: str, reason: str | None) -> None:
        _check_reason(reason)
        async with self._db.read() as session:
            row = await store.membership(session, room_id, reporter)
        if row is None or row.forgotten:
            raise RoomNotFound("unknown room")
        await self._store(ReportRow(room_id=room_id, event_id=None, reporter=reporter,
                                    reason=reason))

    async def _store(self, row: ReportRow) -> None:
        async with self._db.write() as session:
            session.add(row)
            await session.flush()
            report_id = row.id
        log.warning("event=matrix_content_reported id=%d room=%s event=%s reporter=%s",
                    report_id, row.room_id, row.event_id or "-", row.reporter)


def _check_reason(reason: str | None) -> None:
    if reason is not None and len(reason) > MAX_REASON_CHARS:
        raise InvalidRequest(f"reason is longer than {MAX_REASON_CHARS} characters")
