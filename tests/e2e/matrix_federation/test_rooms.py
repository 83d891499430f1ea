"""Rooms across two schools with matrix-nio clients at each (Server-Server API
"Joining Rooms", "Inviting to a room", "Transactions", "Leaving Rooms"): a
pupil at school A invites a pupil at partner school B, B joins, they write
both ways, B leaves; a non-partner school is refused; B down catches up."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

from nio import (
    AsyncClient,
    JoinResponse,
    LoginResponse,
    RoomCreateResponse,
    RoomInviteError,
    RoomInviteResponse,
    RoomSendResponse,
)

from tests.e2e.matrix_federation.conftest import CHAT_PASSWORD, ChatSchool


async def login(school: ChatSchool, login_name: str, made: list[AsyncClient], *,
                record: bool = False) -> AsyncClient:
    """A logged-in nio client after its first sync; ``record``: keep the messages from
    that first sync on (``bodies``)."""
    client = AsyncClient(school.base_url, school.user(login_name))
    made.append(client)
    if record:
        record_messages(client)
    response = await client.login(CHAT_PASSWORD, device_name="nio")
    assert isinstance(response, LoginResponse), response
    await client.sync(timeout=0)
    return client


async def until(client: AsyncClient, check: Callable[[AsyncClient], bool],
                timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check(client):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await client.sync(timeout=500)


def bodies(client: AsyncClient, room_id: str) -> list[str]:
    room = client.rooms.get(room_id)
    return [] if room is None else [e.body for e in _timeline(client, room_id)]


def _timeline(client: AsyncClient, room_id: str) -> list:  # type: ignore[type-arg]
    return client.__dict__.setdefault("_seen", {}).get(room_id, [])


def record_messages(client: AsyncClient) -> None:
    """Keep every text message nio's syncs bring, per room."""
    from nio import RoomMessageText

    seen: dict[str, list] = client.__dict__.setdefault("_seen", {})  # type: ignore[type-arg]

    async def on_message(room, event):  # type: ignore[no-untyped-def]
        seen.setdefault(room.room_id, []).append(event)

    client.add_event_callback(on_message, RoomMessageText)


async def invited_and_joined(a: ChatSchool, b: ChatSchool, clients: list[AsyncClient], *,
                             inviter: str = "anna", invitee: str = "ben",
                             name: str = "Partnerklasse", room_version: str | None = None
                             ) -> tuple[AsyncClient, AsyncClient, str]:
    """``inviter`` at A makes a room named ``name`` inviting ``invitee`` at B, who
    joins over federation; both clients record the messages they see."""
    anna = await login(a, inviter, clients)
    ben = await login(b, invitee, clients)
    record_messages(anna)
    record_messages(ben)
    created = await anna.room_create(name=name, invite=[b.user(invitee)],
                                     room_version=room_version)
    assert isinstance(created, RoomCreateResponse), created
    room_id = created.room_id
    await until(ben, lambda c: room_id in c.invited_rooms)
    assert ben.invited_rooms[room_id].name == name  # the stripped state came along
    joined = await ben.join(room_id)
    assert isinstance(joined, JoinResponse), joined
    await until(ben, lambda c: room_id in c.rooms)
    await until(anna, lambda c: room_id in c.rooms and b.user(invitee) in c.rooms[room_id].users)
    return anna, ben, room_id


async def test_invite_join_chat_both_ways_and_leave(chat_schools: dict[str, ChatSchool],
                                                   clients: list[AsyncClient]) -> None:
    a, b = chat_schools["a"], chat_schools["b"]
    anna, ben, room_id = await invited_and_joined(a, b, clients)
    assert ben.rooms[room_id].name == "Partnerklasse"  # the state came over with the join

    sent = await anna.room_send(room_id, "m.room.message",
                                {"msgtype": "m.text", "body": "Hallo Ben!"})
    assert isinstance(sent, RoomSendResponse), sent
    await until(ben, lambda c: "Hallo Ben!" in bodies(c, room_id))
    sent = await ben.room_send(room_id, "m.room.message",
                               {"msgtype": "m.text", "body": "Hallo Anna!"})
    assert isinstance(sent, RoomSendResponse), sent
    await until(anna, lambda c: "Hallo Anna!" in bodies(c, room_id))
    message = next(e for e in _timeline(anna, room_id) if e.body == "Hallo Anna!")
    assert message.sender == b.user("ben")

    # What an admin command posts (another process's room service) reaches B too.
    from conf.wiring.matrix import school_rooms
    cli = school_rooms(a.school)
    await cli._rooms.append_as(a.user("anna"), room_id, "m.room.message",
                               {"msgtype": "m.text", "body": "vom Sekretariat"})
    a.listener.sender.wake()
    await until(ben, lambda c: "vom Sekretariat" in bodies(c, room_id), timeout=40)

    await ben.room_leave(room_id)
    await until(anna, lambda c: b.user("ben") not in c.rooms[room_id].users)
    # Ben is gone: a later message of Anna's is not sent to school B any more.
    await anna.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "Tschüss"})
    status = {d.destination: d for d in await a.listener.sender.outbox.status()}
    assert "b.test" in status


async def test_a_server_that_is_no_partner_is_refused(chat_schools: dict[str, ChatSchool],
                                                      clients: list[AsyncClient]) -> None:
    a, c = chat_schools["a"], chat_schools["c"]
    anna = await login(a, "anna", clients)
    created = await anna.room_create(name="Nur Partner")
    assert isinstance(created, RoomCreateResponse)
    refused = await anna.room_invite(created.room_id, c.user("cem"))
    assert isinstance(refused, RoomInviteError), refused
    assert refused.status_code == "M_FORBIDDEN"
    assert "c.test" in refused.message


async def test_b_down_catches_up_after_restart(chat_schools: dict[str, ChatSchool],
                                               clients: list[AsyncClient]) -> None:
    a, b = chat_schools["a"], chat_schools["b"]
    anna, ben, room_id = await invited_and_joined(a, b, clients)
    await ben.close()
    await b.stop()  # school B is down
    for n in range(5):
        sent = await anna.room_send(room_id, "m.room.message",
                                    {"msgtype": "m.text", "body": f"verpasst {n}"})
        assert isinstance(sent, RoomSendResponse)
    outbox = a.listener.sender.outbox
    deadline = asyncio.get_running_loop().time() + 20
    while not any(d.destination == "b.test" and d.failures
                  for d in await outbox.status()):
        assert asyncio.get_running_loop().time() < deadline, "A never tried B"
        await asyncio.sleep(0.1)
    # A long outage: A would next try B in ten minutes.
    await outbox.failed("b.test", "down for long", dt.datetime.now(dt.UTC),
                        lambda n: dt.timedelta(minutes=10))
    await b.restart()  # B announces itself; A ends its backoff (no wake from the test)
    restarted = asyncio.get_running_loop().time()
    # The missed events may be there before Ben's first sync: it counts too.
    ben = await login(b, "ben", clients, record=True)
    await until(ben, lambda c: all(f"verpasst {n}" in bodies(c, room_id) for n in range(5)),
                timeout=8.0)
    assert asyncio.get_running_loop().time() - restarted < 8.0
    assert [x for x in bodies(ben, room_id) if x.startswith("verpasst")] == \
        [f"verpasst {n}" for n in range(5)]
    while (status := {d.destination: d for d in await outbox.status()})["b.test"].queued:
        assert asyncio.get_running_loop().time() < deadline + 20, "A kept B's queue"
        await asyncio.sleep(0.1)  # B answered; A is recording the delivery
    assert status["b.test"].failures == 0 and status["b.test"].last_success_at is not None


async def test_a_request_from_b_ends_a_backoff_for_b(chat_schools: dict[str, ChatSchool],
                                                    clients: list[AsyncClient]) -> None:
    """Any authenticated request from a server that A backs off from ends the backoff."""
    a, b = chat_schools["a"], chat_schools["b"]
    anna, ben, room_id = await invited_and_joined(a, b, clients)
    outbox = a.listener.sender.outbox
    await outbox.failed("b.test", "simulated", dt.datetime.now(dt.UTC),
                        lambda n: dt.timedelta(minutes=10))
    a.listener.sender.wake()  # A's sender sees the backoff
    await asyncio.sleep(0.3)
    sent = await anna.room_send(room_id, "m.room.message",
                                {"msgtype": "m.text", "body": "wartet"})
    assert isinstance(sent, RoomSendResponse)
    await asyncio.sleep(1.0)
    assert "wartet" not in bodies(ben, room_id)  # held back by the backoff
    # B asks A for something (any signed request): A now knows B is up.
    await b.listener.client.request("GET", "a.test", "/_matrix/federation/v1/query/profile",
                                    query={"user_id": a.user("anna")})
    await until(ben, lambda c: "wartet" in bodies(c, room_id), timeout=5.0)


async def test_invite_of_a_remote_user_passes_the_role_policy(
        chat_schools: dict[str, ChatSchool], clients: list[AsyncClient]) -> None:
    a, b = chat_schools["a"], chat_schools["b"]
    lehrer = await login(a, "lehrera", clients)
    created = await lehrer.room_create(name="Lehrerzimmer")
    assert isinstance(created, RoomCreateResponse)
    invited = await lehrer.room_invite(created.room_id, b.user("lehrerb"))
    assert isinstance(invited, RoomInviteResponse), invited
    refused = await lehrer.room_invite(created.room_id, b.user("niemand"))
    assert isinstance(refused, RoomInviteError), refused


async def test_a_remote_users_message_counts_as_unread_and_a_mention_highlights(
        chat_schools: dict[str, ChatSchool], clients: list[AsyncClient]) -> None:
    """Unread counts (client-server spec "Receiving notifications") for events that
    came over federation: Ben at B writes, Anna at A sees the count rise as for a
    local sender; a mention of her name highlights."""
    a, b = chat_schools["a"], chat_schools["b"]
    anna, ben, room_id = await invited_and_joined(a, b, clients)
    # Anna's own receipt on the latest event sets the floor.
    await until(anna, lambda c: c.rooms[room_id].unread_notifications == 0)
    for text in ("eins", "zwei", "anna, schau mal"):
        sent = await ben.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": text})
        assert isinstance(sent, RoomSendResponse), sent
    await until(anna, lambda c: "anna, schau mal" in bodies(c, room_id))
    await until(anna, lambda c: c.rooms[room_id].unread_notifications == 3
                and c.rooms[room_id].unread_highlights == 1)
