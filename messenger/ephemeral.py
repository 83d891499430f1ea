"""Ephemeral room data: typing notifications (in memory) and read receipts
(stored, with a stream position) (spec: Client-Server API 13.6 "Typing
Notifications", 13.7 "Receipts").

Typing lives only in this process: it is worth nothing after a restart.  Every
change bumps ``serial``, the typing number in sync tokens; a timeout ends
typing by itself and wakes the room's /sync long-polls like an explicit stop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from directory.db import Database
from messenger.storage import device_messages, user_data
from messenger.storage.stream_locks import lock_stream
from messenger.sync.cache import SyncCache
from messenger.sync.notifier import Notifier

MAX_TYPING_SECONDS = 120.0


class TypingTracker:
    def __init__(self, notifier: Notifier, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._notifier = notifier
        self._clock = clock
        self._typing: dict[str, dict[str, float]] = {}  # room -> user -> until
        self._changed: dict[str, int] = {}  # room -> serial of its last change
        self.serial = 0
        # Told every change (room, user, typing, timeout ms): other servers' members
        # hear about local users typing (messenger.federation_edus).
        self.federation: Callable[[str, str, bool, int], None] | None = None

    def set_typing(self, room_id: str, user_id: str, typing: bool, timeout_ms: int) -> None:
        users = self._typing.setdefault(room_id, {})
        if typing:
            seconds = min(max(timeout_ms, 0) / 1000, MAX_TYPING_SECONDS)
            users[user_id] = self._clock() + seconds
            asyncio.get_running_loop().call_later(seconds + 0.05, self._expire, room_id)
        elif users.pop(user_id, None) is None:
            return
        self._bump(room_id)
        if self.federation is not None:
            self.federation(room_id, user_id, typing, timeout_ms)

    def _bump(self, room_id: str) -> None:
        self.serial += 1
        self._changed[room_id] = self.serial
        if not self._typing.get(room_id):
            self._typing.pop(room_id, None)
        self._notifier.room_event(room_id)

    def _expire(self, room_id: str) -> None:
        users = self._typing.get(room_id, {})
        now = self._clock()
        gone = [u for u, until in users.items() if until <= now]
        for user in gone:
            del users[user]
        if gone:
            self._bump(room_id)

    def typing_in(self, room_id: str) -> list[str]:
        now = self._clock()
        return sorted(u for u, until in self._typing.get(room_id, {}).items() if until > now)

    def changes(self, room_ids: Iterable[str], since: int | None) -> dict[str, dict[str, Any]]:
        """room id -> m.typing event for rooms whose typing changed after ``since``
        (all rooms where someone types, for an initial sync)."""
        if since is not None and since > self.serial:
            since = None  # a token from before a restart
        out = {}
        for room_id in room_ids:
            changed = self._changed.get(room_id, 0)
            users = self.typing_in(room_id)
            if (since is None and users) or (since is not None and changed > since):
                out[room_id] = {"type": "m.typing", "content": {"user_ids": users}}
        return out


class Receipts:
    """Read receipts with a stream position, so /sync sends each one once."""

    def __init__(self, db: Database, notifier: Notifier, cache: SyncCache | None = None, *,
                 on_read: Callable[[str], None] | None = None) -> None:
        self._db = db
        # Told the user of each stored receipt (messenger.unread counts again).
        self._on_read = on_read
        self._notifier = notifier
        self._cache = cache
        self._lock = asyncio.Lock()
        # Awaited after each stored receipt (room, user, type, thread, event): public
        # receipts of local users go to the room's other servers (messenger.federation_edus).
        self.federation: Callable[[str, str, str, str, str], Awaitable[None]] | None = None

    async def put(self, room_id: str, user_id: str, receipt_type: str, thread_id: str,
                  event_id: str) -> None:
        async with self._lock:
            async with self._db.write() as session:
                await lock_stream(session, "receipts")
                stream_id = await device_messages.max_receipt(session) + 1
                await user_data.put_receipt(session, room_id, user_id, receipt_type,
                                            thread_id, event_id, int(time.time() * 1000),
                                            stream_id)
            if self._cache is not None:  # committed: tokens may now point past it
                self._cache.advance("receipts", stream_id)
            if self._on_read is not None:
                self._on_read(user_id)
        self._notifier.room_event(room_id)
        if self.federation is not None:
            await self.federation(room_id, user_id, receipt_type, thread_id, event_id)
