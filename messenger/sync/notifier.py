"""Wakes waiting /sync long-polls when something for them was stored.

One ``Notifier`` per server instance (no module state).  A waiter registers
the rooms it is in and its user id *before* it looks at the database, so an
event stored between "nothing new" and "start waiting" still wakes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Wake:
    """Who to wake: the waiters of ``room_id`` (None: no room) and of ``user_ids``."""

    room_id: str | None
    user_ids: tuple[str, ...] = ()


class WakeFlag:
    """``asyncio.Event``'s ``is_set``/``set``/``clear`` for one waiter, and a wait with
    a timeout that is a bare future and a timer: no deque per flag and no task per
    wait (``asyncio.wait_for`` makes one), which thousands of idle long-polls hold."""

    __slots__ = ("_future", "_set")

    def __init__(self) -> None:
        self._set = False
        self._future: asyncio.Future[bool] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        if self._future is not None and not self._future.done():
            self._future.set_result(True)

    def clear(self) -> None:
        self._set = False

    async def wait(self, timeout: float) -> bool:
        """True once set, False after ``timeout`` seconds."""
        if self._set:
            return True
        loop = asyncio.get_running_loop()
        future = self._future = loop.create_future()
        timer = loop.call_later(timeout, _time_up, future)
        try:
            return await future
        finally:
            timer.cancel()
            self._future = None


def _time_up(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)


@dataclass(eq=False, slots=True)
class Waiter:
    user_id: str
    room_ids: set[str]
    woken: WakeFlag = field(default_factory=WakeFlag)
    # The notifier's index follows room changes (None: not registered).
    _notifier: Notifier | None = field(default=None, repr=False)

    def update_rooms(self, room_ids: Iterable[str]) -> None:
        rooms = set(room_ids)
        if self._notifier is not None and rooms != self.room_ids:
            self._notifier._unindex(self)
            self.room_ids = rooms
            self._notifier._index(self)
        else:
            self.room_ids = rooms

    async def wait(self, timeout: float) -> bool:
        """True if woken within ``timeout`` seconds."""
        if timeout <= 0:
            return self.woken.is_set()
        return await self.woken.wait(timeout)


class Notifier:
    """Waiters indexed by room and by user: an event costs the waiters it wakes,
    not all of them (thousands of idle long-polls)."""

    def __init__(self) -> None:
        # Told every wake-up of this process (messenger.sync.notify_relay), so the
        # school's other processes wake their long-polls too; None: one process.
        self.relay: Callable[[Wake], None] | None = None
        self._waiters: set[Waiter] = set()
        self._by_room: dict[str, set[Waiter]] = {}
        self._by_user: dict[str, set[Waiter]] = {}

    def _index(self, waiter: Waiter) -> None:
        for room_id in waiter.room_ids:
            self._by_room.setdefault(room_id, set()).add(waiter)

    def _unindex(self, waiter: Waiter) -> None:
        for room_id in waiter.room_ids:
            waiters = self._by_room.get(room_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._by_room[room_id]

    @contextmanager
    def waiting(self, user_id: str, room_ids: Iterable[str] = ()) -> Iterator[Waiter]:
        waiter = Waiter(user_id, set(room_ids), _notifier=self)
        self._waiters.add(waiter)
        self._by_user.setdefault(user_id, set()).add(waiter)
        self._index(waiter)
        try:
            yield waiter
        finally:
            self._waiters.discard(waiter)
            self._unindex(waiter)
            mine = self._by_user.get(user_id)
            if mine is not None:
                mine.discard(waiter)
                if not mine:
                    del self._by_user[user_id]

    def room_event(self, room_id: str, user_ids: Iterable[str] = ()) -> None:
        """An event of ``room_id`` was stored; ``user_ids`` are users it concerns
        directly (the target of a membership change, who may not be in the room yet)."""
        if self.relay is None:
            self._wake_room(room_id, user_ids)
            return
        users = tuple(user_ids)
        self._wake_room(room_id, users)
        self.relay(Wake(room_id, users))

    def user_event(self, user_id: str) -> None:
        """Something private to ``user_id`` changed (account data, to-device)."""
        for waiter in self._by_user.get(user_id, ()):
            waiter.woken.set()
        if self.relay is not None:
            self.relay(Wake(None, (user_id,)))

    def wake_local(self, wake: Wake) -> None:
        """Wake this process's waiters for ``wake`` (another process may have sent it)."""
        if wake.room_id is not None:
            self._wake_room(wake.room_id, wake.user_ids)
        else:
            for user_id in wake.user_ids:
                for waiter in self._by_user.get(user_id, ()):
                    waiter.woken.set()

    def _wake_room(self, room_id: str, user_ids: Iterable[str]) -> None:
        for waiter in self._by_room.get(room_id, ()):
            waiter.woken.set()
        for user_id in user_ids:
            for waiter in self._by_user.get(user_id, ()):
                waiter.woken.set()

    def wake_all(self) -> None:
        """Everyone looks again (another process changed the database)."""
        for waiter in self._waiters:
            waiter.woken.set()

    @property
    def waiting_count(self) -> int:
        return len(self._waiters)
