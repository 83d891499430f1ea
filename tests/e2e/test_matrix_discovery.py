"""Finding people and rooms, and reading long histories, over real sockets:
user directory search limited by the role policy, the public room list,
/context around an event, and paging back through 500 messages with nio."""

from __future__ import annotations

import aiohttp
import pytest
from nio import (
    AsyncClient,
    LoginResponse,
    RoomMessagesResponse,
    RoomMessageText,
    RoomVisibility,
)

from conf.app import School
from directory.model import Role
from messenger.ratelimit import RateLimits
from messenger.server import MatrixServer

DOMAIN = "schule.test"
PASSWORD = "correct horse battery"


@pytest.fixture
async def server(running_school: School) -> MatrixServer:
    d = running_school.directory
    await d.create_account(role=Role.TEACHER, login="lehrer", display_name="Frau Lehrer",
                           password=PASSWORD)
    await d.create_account(role=Role.PUPIL, login="anna", display_name="Anna Kind",
                           password=PASSWORD)
    await d.create_account(role=Role.PARENT, login="mama", display_name="Mutter Kind",
                           password=PASSWORD)
    await d.create_account(role=Role.PARENT, login="fremd", display_name="Mutter Fremd",
                           password=PASSWORD)
    await d.link_parent("mama", "anna")
    return next(s for s in running_school.services if isinstance(s, MatrixServer))


async def login(server: MatrixServer, name: str, made: list[AsyncClient]) -> AsyncClient:
    client = AsyncClient(server.base_url, f"@{name}:{DOMAIN}")
    made.append(client)
    assert isinstance(await client.login(PASSWORD), LoginResponse)
    return client


async def post(server: MatrixServer, client: AsyncClient, path: str,
               body: dict) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.post(
            f"{server.base_url}/_matrix/client/v3{path}", json=body,
            headers={"Authorization": f"Bearer {client.access_token}"}) as r:
        return r.status, await r.json()


async def test_user_search_follows_the_role_policy(server: MatrixServer,
                                                   clients: list[AsyncClient]) -> None:
    pupil = await login(server, "anna", clients)
    teacher = await login(server, "lehrer", clients)
    status, found = await post(server, pupil, "/user_directory/search",
                               {"search_term": "mutter"})
    assert status == 200
    # The pupil finds her own mother, not another child's.
    assert [r["user_id"] for r in found["results"]] == [f"@mama:{DOMAIN}"]
    _, found = await post(server, teacher, "/user_directory/search", {"search_term": "Mutter"})
    assert {r["user_id"] for r in found["results"]} == {f"@mama:{DOMAIN}", f"@fremd:{DOMAIN}"}
    _, found = await post(server, teacher, "/user_directory/search",
                          {"search_term": "mutter", "limit": 1})
    assert len(found["results"]) == 1 and found["limited"] is True
    _, found = await post(server, pupil, "/user_directory/search", {"search_term": "frau"})
    assert [r["display_name"] for r in found["results"]] == ["Frau Lehrer"]
    status, _ = await post(server, pupil, "/user_directory/search", {"search_term": 5})
    assert status == 400


async def test_public_rooms_and_context(server: MatrixServer,
                                        clients: list[AsyncClient]) -> None:
    teacher = await login(server, "lehrer", clients)
    pupil = await login(server, "anna", clients)
    public = await teacher.room_create(visibility=RoomVisibility.public, name="Schach-AG",
                                       topic="Dienstags", alias="schach")
    private = await teacher.room_create(name="Geheim")  # private: not listed
    assert (await pupil.room_get_visibility(public.room_id)).visibility == "public"
    assert (await pupil.room_get_visibility(private.room_id)).visibility == "private"
    status, rooms = await post(server, pupil, "/publicRooms", {"limit": 10})
    assert status == 200
    assert [(r["name"], r["topic"], r["canonical_alias"], r["num_joined_members"])
            for r in rooms["chunk"]] == [("Schach-AG", "Dienstags", f"#schach:{DOMAIN}", 1)]
    _, filtered = await post(server, pupil, "/publicRooms",
                             {"filter": {"generic_search_term": "fußball"}})
    assert filtered["chunk"] == []

    ids = []
    for n in range(11):
        sent = await teacher.room_send(public.room_id, "m.room.message",
                                       {"msgtype": "m.text", "body": f"Zug {n}"})
        ids.append(sent.event_id)
    await pupil.join(public.room_id)
    around = await pupil.room_context(public.room_id, ids[5], limit=4)
    assert around.event.body == "Zug 5"
    assert [e.body for e in around.events_before] == ["Zug 4", "Zug 3"]
    assert [e.body for e in around.events_after] == ["Zug 6", "Zug 7"]
    # Paging back from the context's start continues right before "Zug 3".
    page = await pupil.room_messages(public.room_id, start=around.start, limit=1)
    assert [e.body for e in page.chunk] == ["Zug 2"]
    outsider = await login(server, "fremd", clients)
    refused = await outsider.room_context(public.room_id, ids[5])
    assert refused.status_code == "M_FORBIDDEN"


async def test_paging_back_through_500_messages(server: MatrixServer,
                                                clients: list[AsyncClient]) -> None:
    server.limiter.limits = RateLimits.unlimited()  # 500 sends as fast as they go
    teacher = await login(server, "lehrer", clients)
    room = await teacher.room_create(name="Chronik")
    for n in range(500):
        await teacher.room_send(room.room_id, "m.room.message",
                                {"msgtype": "m.text", "body": f"#{n}"})
    bodies: list[str] = []
    token, pages, total = "", 0, 0
    while True:
        page = await teacher.room_messages(room.room_id, start=token, limit=64)
        assert isinstance(page, RoomMessagesResponse), page
        pages += 1
        total += len(page.chunk)
        bodies += [e.body for e in page.chunk if isinstance(e, RoomMessageText)]
        if not page.end:
            break
        token = page.end
    assert bodies == [f"#{n}" for n in reversed(range(500))]
    assert total == 507  # the 500 messages and the room's 7 creation events
    assert pages == 8  # ceil(507 / 64): no empty extra page at the end
