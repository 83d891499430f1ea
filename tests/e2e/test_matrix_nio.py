"""The Matrix client API against matrix-nio's AsyncClient over real loopback sockets.

A school with a teacher, a pupil, the pupil's parent and an unrelated parent
(all from the directory, passwords set there) runs its services; nio logs in
with the directory passwords and talks to the server like a chat app would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from nio import (
    AsyncClient,
    DeleteDevicesAuthResponse,
    DeleteDevicesResponse,
    DevicesResponse,
    ErrorResponse,
    JoinResponse,
    LoginResponse,
    MessageDirection,
    RoomCreateResponse,
    RoomMessagesResponse,
    RoomMessageText,
    RoomSendResponse,
    SyncResponse,
    WhoamiResponse,
)

from conf.app import School
from directory.model import Role
from messenger.server import MatrixServer

DOMAIN = "schule.test"
PASSWORD = "correct horse battery"


def matrix_server(school: School) -> MatrixServer:
    return next(s for s in school.services if isinstance(s, MatrixServer))


@pytest.fixture
async def people(running_school: School) -> dict[str, str]:
    d = running_school.directory
    await d.create_account(role=Role.TEACHER, login="lehrer", display_name="Frau Lehrer",
                           password=PASSWORD)
    await d.create_account(role=Role.PUPIL, login="schueler", display_name="Sam Schüler",
                           password=PASSWORD)
    await d.create_account(role=Role.PARENT, login="mutter", password=PASSWORD)
    await d.create_account(role=Role.PARENT, login="fremd", password=PASSWORD)
    await d.link_parent("mutter", "schueler")
    return {login: f"@{login}:{DOMAIN}" for login in ("lehrer", "schueler", "mutter", "fremd")}


@pytest.fixture
async def base_url(running_school: School) -> str:
    return matrix_server(running_school).base_url


@pytest.fixture
async def clients(base_url: str, people: dict[str, str]) -> AsyncIterator[list[AsyncClient]]:
    made: list[AsyncClient] = []
    yield made
    for client in made:
        await client.close()


async def logged_in(base_url: str, user: str, made: list[AsyncClient]) -> AsyncClient:
    client = AsyncClient(base_url, user)
    made.append(client)
    response = await client.login(PASSWORD, device_name="test")
    assert isinstance(response, LoginResponse), response
    return client


def assert_error(response: Any, errcode: str) -> None:
    assert isinstance(response, ErrorResponse), response
    assert response.status_code == errcode, (response.status_code, response.message)


async def test_two_accounts_chat_through_nio(base_url: str, people: dict[str, str],
                                            clients: list[AsyncClient]) -> None:
    teacher = await logged_in(base_url, people["lehrer"], clients)
    pupil = await logged_in(base_url, "schueler", clients)  # bare localpart works too
    assert pupil.user_id == people["schueler"]

    first = await pupil.sync(timeout=0)
    assert isinstance(first, SyncResponse), first

    created = await teacher.room_create(name="Mathe 7b", invite=[people["schueler"]])
    assert isinstance(created, RoomCreateResponse), created
    room_id = created.room_id

    # The invite reaches the pupil's sync, and the pupil joins from it.
    invited = await pupil.sync(timeout=5000)
    assert isinstance(invited, SyncResponse), invited
    assert room_id in invited.rooms.invite
    joined = await pupil.join(room_id)
    assert isinstance(joined, JoinResponse), joined
    synced = await pupil.sync(timeout=5000)
    assert isinstance(synced, SyncResponse) and room_id in synced.rooms.join
    assert pupil.rooms[room_id].display_name == "Mathe 7b"
    await teacher.sync(timeout=0)

    # A waiting sync is woken by a message within a second.
    waiting = asyncio.create_task(pupil.sync(timeout=20000))
    await asyncio.sleep(0.3)  # let the long-poll reach the server and wait
    assert not waiting.done()
    sent_at = time.monotonic()
    sent = await teacher.room_send(room_id, "m.room.message",
                                   {"msgtype": "m.text", "body": "Hausaufgabe: S. 42"})
    assert isinstance(sent, RoomSendResponse), sent
    woke = await asyncio.wait_for(waiting, 10)
    latency = time.monotonic() - sent_at
    assert isinstance(woke, SyncResponse), woke
    bodies = [e.body for e in woke.rooms.join[room_id].timeline.events
              if isinstance(e, RoomMessageText)]
    assert bodies == ["Hausaufgabe: S. 42"]
    assert latency < 1.0, latency

    # Idempotent transaction ids: the same txn id twice is one event.
    again1 = await pupil.room_send(room_id, "m.room.message",
                                   {"msgtype": "m.text", "body": "Danke!"}, tx_id="txn-1")
    again2 = await pupil.room_send(room_id, "m.room.message",
                                   {"msgtype": "m.text", "body": "Danke!"}, tx_id="txn-1")
    assert isinstance(again1, RoomSendResponse) and isinstance(again2, RoomSendResponse)
    assert again1.event_id == again2.event_id
    other = await pupil.room_send(room_id, "m.room.message",
                                  {"msgtype": "m.text", "body": "Bis morgen"}, tx_id="txn-2")
    assert isinstance(other, RoomSendResponse) and other.event_id != again1.event_id

    # History both ways.
    back = await teacher.room_messages(room_id, start="", limit=10)
    assert isinstance(back, RoomMessagesResponse), back
    texts_back = [e.body for e in back.chunk if isinstance(e, RoomMessageText)]
    assert texts_back == ["Bis morgen", "Danke!", "Hausaufgabe: S. 42"]
    forward = await teacher.room_messages(room_id, start="t0", limit=50,
                                          direction=MessageDirection.front)
    assert isinstance(forward, RoomMessagesResponse), forward
    assert forward.chunk[0].source["type"] == "m.room.create"
    texts_forward = [e.body for e in forward.chunk if isinstance(e, RoomMessageText)]
    assert texts_forward == ["Hausaufgabe: S. 42", "Danke!", "Bis morgen"]
    # Paging backwards in steps of two reaches the same events.
    seen: list[str] = []
    token = ""
    for _ in range(20):
        page = await teacher.room_messages(room_id, start=token, limit=2)
        assert isinstance(page, RoomMessagesResponse), page
        seen += [e.event_id for e in page.chunk]
        if not page.end:
            break
        token = page.end
    assert seen == [e.event_id for e in reversed(forward.chunk)]

    # Logging out kills the token (nio forgets it; we present it again).
    token_before = pupil.access_token
    assert (await pupil.logout()).transport_response.status == 200
    pupil.restore_login(pupil.user_id, pupil.device_id, token_before)
    assert_error(await pupil.sync(timeout=0), "M_UNKNOWN_TOKEN")
    assert_error(await pupil.whoami(), "M_UNKNOWN_TOKEN")
    assert isinstance(await teacher.whoami(), WhoamiResponse)  # others stay logged in


async def test_wrong_password_and_policy_refusals(base_url: str, people: dict[str, str],
                                                 clients: list[AsyncClient]) -> None:
    stranger = AsyncClient(base_url, people["lehrer"])
    clients.append(stranger)
    assert_error(await stranger.login("wrong password"), "M_FORBIDDEN")

    pupil = await logged_in(base_url, people["schueler"], clients)
    # A pupil may not open a chat with a parent who is not theirs...
    refused = await pupil.room_create(invite=[people["fremd"]], is_direct=True)
    assert_error(refused, "M_FORBIDDEN")
    assert "parents may only contact" in refused.message
    # ...but with their own parent, and not invite a stranger's parent later either.
    own = await pupil.room_create(invite=[people["mutter"]], is_direct=True)
    assert isinstance(own, RoomCreateResponse), own
    assert_error(await pupil.room_invite(own.room_id, people["fremd"]), "M_FORBIDDEN")
    joined = await pupil.joined_rooms()
    assert joined.rooms == [own.room_id]  # the refused createRoom made no room


async def test_raw_http_errors_and_cors(base_url: str, people: dict[str, str],
                                        clients: list[AsyncClient]) -> None:
    pupil = await logged_in(base_url, people["schueler"], clients)
    auth = {"Authorization": f"Bearer {pupil.access_token}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base_url}/_matrix/client/v3/createRoom", data=b"{not json",
                             headers=auth) as r:
            assert r.status == 400
            assert (await r.json())["errcode"] == "M_NOT_JSON"
        async with http.get(f"{base_url}/_matrix/client/v3/no/such/endpoint") as r:
            assert r.status == 404
            assert (await r.json())["errcode"] == "M_UNRECOGNIZED"
        async with http.get(f"{base_url}/_matrix/client/v3/sync") as r:
            assert r.status == 401
            assert (await r.json())["errcode"] == "M_MISSING_TOKEN"
        async with http.post(f"{base_url}/_matrix/client/v3/register", json={}) as r:
            body = await r.json()
            assert r.status == 403 and body["errcode"] == "M_FORBIDDEN"
            assert "school directory" in body["error"]
        preflight = {"Origin": "https://app.element.io",
                     "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "authorization, content-type"}
        async with http.options(f"{base_url}/_matrix/client/v3/createRoom",
                                headers=preflight) as r:
            assert r.status == 200
            assert r.headers["Access-Control-Allow-Origin"] == "*"
            assert "POST" in r.headers["Access-Control-Allow-Methods"]
            assert "authorization" in r.headers["Access-Control-Allow-Headers"].lower()
        async with http.get(f"{base_url}/_matrix/client/versions") as r:
            assert r.headers["Access-Control-Allow-Origin"] == "*"
            assert "v1.12" in (await r.json())["versions"]


async def test_device_management_with_user_interactive_auth(
        base_url: str, people: dict[str, str], clients: list[AsyncClient]) -> None:
    phone = await logged_in(base_url, people["lehrer"], clients)
    laptop = await logged_in(base_url, people["lehrer"], clients)
    listed = await phone.devices()
    assert isinstance(listed, DevicesResponse), listed
    assert {d.id for d in listed.devices} == {phone.device_id, laptop.device_id}
    challenge = await phone.delete_devices([laptop.device_id])
    assert isinstance(challenge, DeleteDevicesAuthResponse), challenge
    auth = {"type": "m.login.password", "session": challenge.session, "password": PASSWORD,
            "identifier": {"type": "m.id.user", "user": people["lehrer"]}}
    done = await phone.delete_devices([laptop.device_id], auth=auth)
    assert isinstance(done, DeleteDevicesResponse), done
    assert_error(await laptop.whoami(), "M_UNKNOWN_TOKEN")
    assert [d.id for d in (await phone.devices()).devices] == [phone.device_id]
