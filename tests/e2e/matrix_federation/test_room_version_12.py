"""A room of version 12 between two Schulhof schools (Room Version 12: MSC4291 room
ids as the create event's hash, MSC4289 creators above every power level, MSC4297
state resolution v2.1), with matrix-nio clients at each: the room made at A, B's
teacher invited and joined over federation, messages both ways, power-level and
state changes made on each side (one pair of them concurrently, so the room
forks) converging to the same state at both servers, and B catching up after a
restart."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from nio import (
    AsyncClient,
    RoomGetStateResponse,
    RoomPutStateError,
    RoomPutStateResponse,
    RoomSendResponse,
)

from messenger.events.identifiers import create_event_id_of
from messenger.storage import dag
from tests.e2e.matrix_federation.conftest import ChatSchool
from tests.e2e.matrix_federation.test_rooms import bodies, invited_and_joined, login, until

POWER = ("m.room.power_levels", "")


async def state_of(client: AsyncClient, room_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The room's current state at the client's server (``GET /rooms/{id}/state``)."""
    response = await client.room_get_state(room_id)
    assert isinstance(response, RoomGetStateResponse), response
    return {(e["type"], e["state_key"]): e for e in response.events}


async def converged(first: AsyncClient, second: AsyncClient, room_id: str,
                    check: Callable[[dict[tuple[str, str], dict[str, Any]]], bool],
                    timeout: float = 30.0) -> dict[tuple[str, str], dict[str, Any]]:
    """Wait until both servers hold the same state event for every (type, state key)
    and that state passes ``check``; the state."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        one, two = await state_of(first, room_id), await state_of(second, room_id)
        ids_one = {k: e["event_id"] for k, e in one.items()}
        ids_two = {k: e["event_id"] for k, e in two.items()}
        if ids_one == ids_two and check(one):
            return one
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the servers' states differ: {ids_one} != {ids_two}"
                                 if ids_one != ids_two else f"unexpected state: {ids_one}")
        await asyncio.sleep(0.2)


async def put_state(client: AsyncClient, room_id: str, event_type: str,
                    content: dict[str, Any]) -> str:
    response = await client.room_put_state(room_id, event_type, content)
    assert isinstance(response, RoomPutStateResponse), response
    return response.event_id


async def say(client: AsyncClient, room_id: str, text: str) -> None:
    sent = await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": text})
    assert isinstance(sent, RoomSendResponse), sent


async def known(school: ChatSchool, event_id: str) -> bool:
    """Has ``school`` the event (in its timeline, or kept aside as soft-failed)?"""
    async with school.school.db.read() as session:
        return bool(await dag.known_events(session, [event_id]))


async def eventually(probe: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await probe():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


async def test_version_12_room_between_two_schools(chat_schools: dict[str, ChatSchool],
                                                   clients: list[AsyncClient]) -> None:
    a, b = chat_schools["a"], chat_schools["b"]
    creator, guest = a.user("lehrera"), b.user("lehrerb")
    lehrera, lehrerb, room_id = await invited_and_joined(
        a, b, clients, inviter="lehrera", invitee="lehrerb", name="Projekt V12",
        room_version="12")
    assert ":" not in room_id  # "!" + the create event's reference hash, no server name

    # The same create event at both servers, its hash the room id.
    state = await converged(lehrera, lehrerb, room_id, lambda s: ("m.room.member", guest) in s)
    create = state[("m.room.create", "")]
    assert create["event_id"] == create_event_id_of(room_id)
    assert create["content"]["room_version"] == "12"
    assert state[("m.room.name", "")]["content"]["name"] == "Projekt V12"
    # The creator is above every level and never listed (MSC4289).
    assert creator not in state[POWER]["content"].get("users", {})

    await say(lehrera, room_id, "Hallo aus A")
    await until(lehrerb, lambda c: "Hallo aus A" in bodies(c, room_id))
    await say(lehrerb, room_id, "Hallo aus B")
    await until(lehrera, lambda c: "Hallo aus B" in bodies(c, room_id))

    # A: the creator makes B's teacher an admin; B's server accepts it.
    levels = dict(state[POWER]["content"])
    promoted = await put_state(lehrera, room_id, "m.room.power_levels",
                               {**levels, "users": {guest: 100}})
    await converged(lehrera, lehrerb, room_id, lambda s: s[POWER]["event_id"] == promoted)
    # B: the admin changes the power levels and renames the room, reaching A;
    # listing the creator in the power levels is refused at B (MSC4289), whatever
    # level it gives her.
    refused = await lehrerb.room_put_state(room_id, "m.room.power_levels",
                                           {**levels, "users": {guest: 100, creator: 0}})
    assert isinstance(refused, RoomPutStateError), refused
    assert refused.status_code == "M_FORBIDDEN"
    changed = await put_state(lehrerb, room_id, "m.room.power_levels",
                              {**levels, "users": {guest: 100, a.user("anna"): 10}})
    renamed = await put_state(lehrerb, room_id, "m.room.name", {"name": "Von B benannt"})
    state = await converged(lehrera, lehrerb, room_id,
                            lambda s: s[("m.room.name", "")]["event_id"] == renamed)
    assert state[POWER]["event_id"] == changed

    # Both sides change state while neither can reach the other: the room forks.
    async def fork_changes() -> tuple[str, str]:
        # A: the creator demotes B's admin and sets a topic; B: the admin (still one
        # in B's fork) renames the room again.
        demoted = await put_state(lehrera, room_id, "m.room.power_levels",
                                  {**levels, "users": {}})
        await put_state(lehrera, room_id, "m.room.topic", {"topic": "Thema aus A"})
        return demoted, await put_state(lehrerb, room_id, "m.room.name",
                                        {"name": "Zweiter Name von B"})

    demoted, renamed_again = await concurrently_forked(a, b, fork_changes)
    # Each side gets the other's fork: B resolves the two (the demotion holds, so
    # both renames of the demoted admin fail; v2.1), A soft-fails B's rename (against
    # its current state the sender is no admin any more) but keeps it.
    await eventually(lambda: known(a, renamed_again))
    await converged(lehrerb, lehrerb, room_id,  # B's state alone: A's differs until B writes
                    lambda s: s[POWER]["event_id"] == demoted and ("m.room.topic", "") in s)
    # B writes on top of both forks (its message names B's rename as a prev event):
    # A must compute the same state before it as B, soft-failed rename included.
    await say(lehrerb, room_id, "nach der Gabelung")
    await until(lehrera, lambda c: "nach der Gabelung" in bodies(c, room_id))
    state = await converged(lehrera, lehrerb, room_id, lambda s: True, timeout=10.0)
    assert state[POWER]["event_id"] == demoted
    assert state[("m.room.topic", "")]["content"]["topic"] == "Thema aus A"
    assert ("m.room.name", "") not in state
    await say(lehrera, room_id, "Antwort nach der Gabelung")
    await until(lehrerb, lambda c: "Antwort nach der Gabelung" in bodies(c, room_id))
    later = await converged(lehrera, lehrerb, room_id, lambda s: True)
    assert {k: e["event_id"] for k, e in later.items()} == \
        {k: e["event_id"] for k, e in state.items()}

    # B is down for a while and catches up after its restart.
    await lehrerb.close()
    await b.stop()
    for n in range(3):
        await say(lehrera, room_id, f"verpasst {n}")
    topic = await put_state(lehrera, room_id, "m.room.topic", {"topic": "Während B schlief"})
    await b.restart()
    lehrerb = await login(b, "lehrerb", clients, record=True)
    await until(lehrerb, lambda c: all(f"verpasst {n}" in bodies(c, room_id) for n in range(3)),
                timeout=40.0)
    await converged(lehrera, lehrerb, room_id,
                    lambda s: s[("m.room.topic", "")]["event_id"] == topic)


async def concurrently_forked(a: ChatSchool, b: ChatSchool,
                              changes: Callable[[], Awaitable[tuple[str, str]]]
                              ) -> tuple[str, str]:
    """Run ``changes`` (an event id at A, one at B) while each school backs off from
    the other, then let them talk; B had not seen A's event when it made its own."""
    now = dt.datetime.now(dt.UTC)
    for here, there in ((a, b), (b, a)):
        await here.listener.sender.outbox.failed(there.name, "held by the test", now,
                                                 lambda n: dt.timedelta(minutes=10))
        here.listener.sender.wake()
    at_a, at_b = await changes()
    assert not await known(b, at_a) and not await known(a, at_b)
    for here, there in ((a, b), (b, a)):
        await here.listener.sender.outbox.end_backoff(there.name)
        here.listener.sender.wake()
    return at_a, at_b
