"""/sync wake-ups across a school's processes (issue 15).

A message sent through one ``serve`` worker must reach a /sync (or sliding
sync) long-poll held on another.  The relay sends every wake-up of this
process's ``Notifier`` (a room and the users it concerns, or one user) over the
school's ``Broadcast``.  A wake-up from another process first brings this
process's sync cache up to the database (``catch_up``: the other process's
events are not in it) and then wakes the local waiters of that room or user.

Lost notifications (the broadcast reconnected) wake everybody after a
catch-up; besides, ``MatrixServer`` compares the stream positions with the
database every second, which also covers writers that do not broadcast
(``schulhof rooms post``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from directory.broadcast import MAX_PAYLOAD, Broadcast
from messenger.sync.notifier import Notifier, Wake

log = logging.getLogger("schulhof.messenger")

CHANNEL = "schulhof_matrix"


def encode(wake: Wake) -> str:
    return json.dumps([wake.room_id, list(wake.user_ids)], separators=(",", ":"))


def decode(payload: str) -> Wake:
    """Raises ValueError (json's included) on anything but ``[room or null, [users]]``."""
    try:
        room_id, user_ids = json.loads(payload)
    except TypeError as exc:  # a number, null, ...: nothing to unpack
        raise ValueError("not a wake-up") from exc
    if not (room_id is None or isinstance(room_id, str)) or not isinstance(user_ids, list) \
            or not all(isinstance(u, str) for u in user_ids):
        raise ValueError("not a wake-up")
    return Wake(room_id, tuple(user_ids))


class NotifyRelay:
    """Connects one ``Notifier`` to a ``Broadcast``; ``catch_up`` refreshes the sync cache
    from the database (True when another process wrote)."""

    def __init__(self, notifier: Notifier, broadcast: Broadcast,
                 catch_up: Callable[[], Awaitable[bool]]) -> None:
        self._notifier = notifier
        self._broadcast = broadcast
        self._catch_up = catch_up
        self._pending: list[Wake] = []
        self._drain: asyncio.Task[None] | None = None
        self.received = 0
        notifier.relay = self._send
        broadcast.listen(CHANNEL, self._receive)
        broadcast.on_reconnect(self.everyone)

    def _send(self, wake: Wake) -> None:
        payload = encode(wake)
        if len(payload) > MAX_PAYLOAD:  # a membership event naming many users: the room
            payload = encode(Wake(wake.room_id, ()))  # wakes its members anyway
        self._broadcast.send(CHANNEL, payload)

    def _receive(self, payload: str) -> None:
        self.received += 1
        self._pending.append(decode(payload))
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_task(self._wake_pending())

    async def _wake_pending(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                await self._caught_up()
                for wake in batch:
                    self._notifier.wake_local(wake)
        finally:
            self._drain = None

    async def _caught_up(self) -> None:
        try:
            await self._catch_up()
        except Exception:  # the database is away for a moment: the periodic check retries
            log.exception("event=sync_cache_check_failed")

    async def everyone(self) -> None:
        """Wake-ups may have been missed: catch up and let every waiter look again."""
        await self._caught_up()
        self._notifier.wake_all()

    async def stop(self) -> None:
        if self._drain is not None:
            self._drain.cancel()
            try:
                await self._drain
            except asyncio.CancelledError:
                pass
            self._drain = None
