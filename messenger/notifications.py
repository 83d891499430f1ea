"""The user's past notifications (spec: Client-Server API v1.12 "Listing
Notifications", GET /notifications).

Read from the rows the one push-rule evaluation wrote when each event was stored
(messenger.unread): the same decisions as the unread counts and the pushes.
A notification is ``read`` once a read receipt of the user reaches it (an
unthreaded one, or one in its thread); newest first.  Read ones stay listed for
a day (highlights a month), then ``prune`` (run by the server every hour)
deletes their rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from directory.db import Database
from messenger.storage import push_actions
from messenger.storage.events import StoredEvent


@dataclass(frozen=True)
class Notification:
    event: StoredEvent
    read: bool
    highlight: bool


@dataclass(frozen=True)
class NotificationPage:
    notifications: list[Notification]
    next_position: int | None


# How long a read notification stays listed (then its row goes, so the table does
# not grow with every message ever sent): like Synapse, a day, highlights a month.
READ_KEPT_SECONDS = 24 * 3600
READ_HIGHLIGHTS_KEPT_SECONDS = 30 * 24 * 3600


class Notifications:
    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    async def prune(self) -> int:
        """Forget read notifications older than their time (``READ_KEPT_SECONDS``);
        the unread ones are the counts and stay.  How many went."""
        now_ms = int(self._clock() * 1000)
        async with self._db.write() as session:
            return await push_actions.prune_read(
                session, before_ms=now_ms - READ_KEPT_SECONDS * 1000,
                highlights_before_ms=now_ms - READ_HIGHLIGHTS_KEPT_SECONDS * 1000)

    async def page(self, user_id: str, *, before: int | None, limit: int,
                   only_highlight: bool) -> NotificationPage:
        async with self._db.read() as session:
            rows = await push_actions.page(session, user_id, before=before, limit=limit + 1,
                                           only_highlight=only_highlight)
            positions = await push_actions.receipt_positions(
                session, user_id, {event.room_id for event, _t, _h in rows})
        found = [Notification(event, push_actions.is_read(positions, event.room_id, thread,
                                                          event.stream_ordering), highlight)
                 for event, thread, highlight in rows[:limit]]
        more = len(rows) > limit
        return NotificationPage(found, found[-1].event.stream_ordering if more else None)
