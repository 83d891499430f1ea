"""The notifier wakes exactly the waiters an event concerns, within milliseconds."""

from __future__ import annotations

import asyncio
import time

from messenger.sync.notifier import Notifier


async def test_wakes_waiters_of_the_room_and_the_target_user_only() -> None:
    notifier = Notifier()
    with notifier.waiting("@a:s", {"!r1:s"}) as in_room, \
            notifier.waiting("@b:s", {"!r2:s"}) as elsewhere, \
            notifier.waiting("@c:s", set()) as invitee:
        tasks = [asyncio.create_task(w.wait(5)) for w in (in_room, elsewhere, invitee)]
        await asyncio.sleep(0.01)
        started = time.monotonic()
        notifier.room_event("!r1:s", ["@c:s"])
        woken_a = await tasks[0]
        woken_c = await tasks[2]
        assert woken_a and woken_c
        assert time.monotonic() - started < 0.1
        assert not tasks[1].done()
        notifier.user_event("@b:s")
        assert await tasks[1]
    assert notifier.waiting_count == 0


async def test_times_out_without_events_and_sees_earlier_wakeups() -> None:
    notifier = Notifier()
    with notifier.waiting("@a:s", {"!r:s"}) as waiter:
        assert not await waiter.wait(0.05)
        notifier.room_event("!r:s")  # before waiting: must not be lost
        assert await waiter.wait(0.05)
        assert waiter.woken.is_set()
    assert notifier.waiting_count == 0


async def test_two_notifiers_are_independent() -> None:
    one, two = Notifier(), Notifier()
    with one.waiting("@a:s", {"!r:s"}) as waiter:
        two.room_event("!r:s")
        assert not await waiter.wait(0.05)
