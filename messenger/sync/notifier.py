"""Wakes waiting /sync long-polls when something for them was stored.

One ``Notifier`` per server instance (no module state).  A waiter registers
the rooms it is in and its user id *before* it looks at the database, so an
event stored between "nothing new" and "start waiting" still wakes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass(eq=False)
class Waiter:
    user_id: str
    room_ids: set[str]
    woken: asyncio.Event = field(default_factory=asyncio.Event)

    def update_rooms(self, room_ids: Iterable[str]) -> None:
        self.room_ids = set(room_ids)

    async def wait(self, timeout: float) -> bool:
        """True if woken within ``timeout`` seconds."""
        if timeout <= 0:
            return self.woken.is_set()
        try:
            await asyncio.wait_for(self.woken.wait(), timeout)
        except TimeoutError:
            return False
        return True


class Notifier:
    def __init__(self) -> None:
        self._waiters: set[Waiter] = set()

    @contextmanager
    def waiting(self, user_id: str, room_ids: Iterable[str] = ()) -> Iterator[Waiter]:
        waiter = Waiter(user_id, set(room_ids))
        self._waiters.add(waiter)
        try:
            yield waiter
        finally:
            self._waiters.discard(waiter)

    def room_event(self, room_id: str, user_ids: Iterable[str] = ()) -> None:
        """An event of ``room_id`` was stored; ``user_ids`` are users it concerns
        directly (the target of a membership change, who may not be in the room yet)."""
        users = set(user_ids)
        for waiter in self._waiters:
            if room_id in waiter.room_ids or waiter.user_id in users:
                waiter.woken.set()

    def user_event(self, user_id: str) -> None:
        """Something private to ``user_id`` changed (account data, to-device)."""
        for waiter in self._waiters:
            if waiter.user_id == user_id:
                waiter.woken.set()

    @property
    def waiting_count(self) -> int:
        return len(self._waiters)
