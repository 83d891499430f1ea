"""/sync wake-ups across processes (messenger.sync.notify_relay, issue 15)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from messenger.sync.notifier import Notifier, Wake
from messenger.sync.notify_relay import CHANNEL, NotifyRelay, decode, encode
from tests.support.broadcast import PairedBroadcast

ids = st.text(min_size=1, max_size=40)


@settings(deadline=None)  # pure functions; a loaded machine is no failure
@given(st.none() | ids, st.lists(ids, max_size=5))
def test_wakes_round_trip(room: str | None, users: list[str]) -> None:
    wake = Wake(room, tuple(users))
    assert decode(encode(wake)) == wake


@settings(deadline=None)  # pure functions; a loaded machine is no failure
@given(st.text(max_size=80))
def test_anything_else_is_a_value_error(payload: str) -> None:
    try:
        decode(payload)
    except ValueError:
        pass


@pytest.mark.parametrize("payload", ["", "{}", "[1, []]", '["!r", "u"]', '["!r", [1]]',
                                     "[null]"])
def test_malformed_payloads(payload: str) -> None:
    with pytest.raises(ValueError):
        decode(payload)


async def test_a_room_event_wakes_the_other_process_after_its_catch_up() -> None:
    here, there = PairedBroadcast.pair()
    calls: list[str] = []
    notifier_here, notifier_there = Notifier(), Notifier()

    async def catch_up_there() -> bool:
        calls.append("catch_up")
        return True

    async def nothing() -> bool:
        return False

    NotifyRelay(notifier_here, here, nothing)
    relay = NotifyRelay(notifier_there, there, catch_up_there)
    with notifier_there.waiting("@ben:s", ["!room:s"]) as in_room, \
            notifier_there.waiting("@cara:s", []) as invited, \
            notifier_there.waiting("@dora:s", ["!other:s"]) as elsewhere:
        notifier_here.room_event("!room:s", ["@cara:s"])
        assert await in_room.wait(1) and await invited.wait(1)
        assert not await elsewhere.wait(0.05)
        assert calls == ["catch_up"]  # before the wake: /sync reads a current cache
        notifier_here.user_event("@dora:s")
        assert await elsewhere.wait(1)
    assert relay.received == 2
    assert there.sent == []
    await relay.stop()


async def test_lost_wake_ups_wake_everybody_after_a_reconnect() -> None:
    here, there = PairedBroadcast.pair()
    notifier_here, notifier_there = Notifier(), Notifier()

    async def caught_up() -> bool:
        return True

    NotifyRelay(notifier_here, here, caught_up)
    NotifyRelay(notifier_there, there, caught_up)
    here.lose = True
    with notifier_there.waiting("@ben:s", ["!room:s"]) as waiter:
        notifier_here.room_event("!room:s")
        await asyncio.sleep(0.05)
        assert not waiter.woken.is_set()
        await there.reconnect()
        assert waiter.woken.is_set()


async def test_a_huge_membership_wake_sends_the_room_only() -> None:
    here, there = PairedBroadcast.pair()

    async def caught_up() -> bool:
        return True

    NotifyRelay(Notifier(), there, caught_up)
    notifier = Notifier()
    NotifyRelay(notifier, here, caught_up)
    notifier.room_event("!room:s", [f"@user{n}:school.example" for n in range(2000)])
    assert here.sent == [(CHANNEL, encode(Wake("!room:s", ())))]
