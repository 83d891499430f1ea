"""Rooms between Synapse and a Schulhof school, with matrix-nio clients on both sides
(issue 13, "Interop with Synapse"): a room created at either server, the other
side's user invited, joining over federation (make_join/send_join against the
other implementation) and messages both ways."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from nio import (
    AsyncClient,
    JoinResponse,
    LoginResponse,
    RoomCreateResponse,
    RoomMessageText,
    RoomSendResponse,
)

from tests.e2e.matrix_synapse.conftest import (
    ON_SHARED_LOOP,
    PASSWORD,
    SYNAPSE_TEST_TIMEOUT,
    Interop,
)
from tests.support.synapse import SynapseUser

pytestmark = [pytest.mark.synapse, pytest.mark.timeout(SYNAPSE_TEST_TIMEOUT), ON_SHARED_LOOP]


async def nio_login(base_url: str, user_id: str, made: list[AsyncClient]) -> AsyncClient:
    client = AsyncClient(base_url, user_id)
    made.append(client)
    assert isinstance(await client.login(PASSWORD, device_name="nio"), LoginResponse)
    seen: dict[str, list[RoomMessageText]] = {}
    client.__dict__["seen"] = seen

    async def on_message(room, event):  # type: ignore[no-untyped-def]
        seen.setdefault(room.room_id, []).append(event)

    client.add_event_callback(on_message, RoomMessageText)
    await client.sync(timeout=0)
    return client


def bodies(client: AsyncClient, room_id: str) -> list[str]:
    return [e.body for e in client.__dict__["seen"].get(room_id, [])]


async def until(client: AsyncClient, check: Callable[[AsyncClient], bool],
                timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check(client):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{client.user_id}: condition not reached in time")
        await client.sync(timeout=500)


async def chat(first: AsyncClient, second: AsyncClient, room_id: str) -> None:
    sent = await first.room_send(room_id, "m.room.message",
                                 {"msgtype": "m.text", "body": f"Hallo von {first.user_id}"})
    assert isinstance(sent, RoomSendResponse), sent
    await until(second, lambda c: f"Hallo von {first.user_id}" in bodies(c, room_id))
    sent = await second.room_send(room_id, "m.room.message",
                                  {"msgtype": "m.text", "body": f"Antwort von {second.user_id}"})
    assert isinstance(sent, RoomSendResponse), sent
    await until(first, lambda c: f"Antwort von {second.user_id}" in bodies(c, room_id))
    reply = next(e for e in first.__dict__["seen"][room_id]
                 if e.body == f"Antwort von {second.user_id}")
    assert reply.sender == second.user_id


async def create_and_join(creator: AsyncClient, joiner: AsyncClient, name: str,
                          room_version: str | None = None) -> str:
    """``creator`` makes a room named ``name`` inviting ``joiner``, who takes the
    invite and joins over federation; both see the other in the room."""
    extra = {} if room_version is None else {"room_version": room_version}
    created = await creator.room_create(name=name, invite=[joiner.user_id], **extra)
    assert isinstance(created, RoomCreateResponse), created
    room_id = created.room_id
    if room_version == "12":
        assert ":" not in room_id  # v12: "!" + the create event's reference hash
    await until(joiner, lambda c: room_id in c.invited_rooms)
    joined = await joiner.join(room_id)
    assert isinstance(joined, JoinResponse), joined
    await until(joiner, lambda c: room_id in c.rooms)
    await until(creator,
                lambda c: room_id in c.rooms and joiner.user_id in c.rooms[room_id].users)
    assert joiner.rooms[room_id].name == name
    return room_id


async def test_room_created_at_schulhof_joined_from_synapse(
        interop: Interop, clients: list[AsyncClient]) -> None:
    a = interop.schools["a"]
    await interop.synapse_user("anna", "Anna Synapse")
    lehrer = await nio_login(a.matrix.base_url, interop.teacher_id(), clients)
    anna = await nio_login(interop.synapse.client_url, interop.synapse_id("anna"), clients)
    room_id = await create_and_join(lehrer, anna, "Schulhof-Raum")
    await chat(lehrer, anna, room_id)


async def test_room_created_at_synapse_joined_from_schulhof(
        interop: Interop, clients: list[AsyncClient]) -> None:
    a = interop.schools["a"]
    await interop.synapse_user("bert", "Bert Synapse")
    bert = await nio_login(interop.synapse.client_url, interop.synapse_id("bert"), clients)
    lehrer = await nio_login(a.matrix.base_url, interop.teacher_id(), clients)
    room_id = await create_and_join(bert, lehrer, "Synapse-Raum")
    await chat(bert, lehrer, room_id)


async def test_version_12_room_created_at_synapse_joined_from_schulhof(
        interop: Interop, clients: list[AsyncClient]) -> None:
    """Synapse's room version 12 (room id = the create event's hash, no create event
    in auth_events, privileged creators, state resolution v2.1): the invite is
    taken, the join goes through make_join/send_join, and both sides chat."""
    a = interop.schools["a"]
    await interop.synapse_user("carla", "Carla Synapse")
    carla = await nio_login(interop.synapse.client_url, interop.synapse_id("carla"), clients)
    lehrer = await nio_login(a.matrix.base_url, interop.teacher_id(), clients)
    room_id = await create_and_join(carla, lehrer, "Neueste Version", room_version="12")
    await chat(carla, lehrer, room_id)
    # The creator's power is the room version's, not a power level: Schulhof's
    # client API shows the create event with its room id and no "users" entry for her.
    status, body = await interop.synapse.client(
        SynapseUser(carla.user_id, carla.access_token, carla.device_id), "GET",
        f"/_matrix/client/v3/rooms/{room_id}/state/m.room.power_levels/")
    assert status == 200 and carla.user_id not in body.get("users", {}), body
    state = await lehrer.room_get_state(room_id)
    create = next(e for e in state.events if e["type"] == "m.room.create")
    assert create["room_id"] == room_id and create["content"]["room_version"] == "12"
    assert "$" + room_id[1:] == create["event_id"]


async def test_version_12_room_created_at_schulhof_joined_from_synapse(
        interop: Interop, clients: list[AsyncClient]) -> None:
    """A v12 room made here (its id the create event's hash, the create event sent
    without room_id): Synapse's user is invited, joins through make_join/send_join
    against Schulhof, and both sides chat."""
    a = interop.schools["a"]
    await interop.synapse_user("dora", "Dora Synapse")
    lehrer = await nio_login(a.matrix.base_url, interop.teacher_id(), clients)
    dora = await nio_login(interop.synapse.client_url, interop.synapse_id("dora"), clients)
    room_id = await create_and_join(lehrer, dora, "V12 bei Schulhof", room_version="12")
    await chat(lehrer, dora, room_id)
