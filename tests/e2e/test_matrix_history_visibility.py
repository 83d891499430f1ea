"""History visibility over raw HTTP (spec: Client-Server API 11.2): /messages,
/context and /event show a user only what the room's m.room.history_visibility
lets them see."""

from __future__ import annotations

import aiohttp

from tests.e2e import test_matrix_api
from tests.e2e.test_matrix_api import V3, Client, client
from tests.e2e.test_matrix_relations import send, text

base = test_matrix_api.base
http = test_matrix_api.http


async def room_with(teacher: Client, visibility: str) -> str:
    room = (await teacher.ok("POST", f"{V3}/createRoom", {"preset": "public_chat"}))["room_id"]
    await teacher.ok("PUT", f"{V3}/rooms/{room}/state/m.room.history_visibility/",
                     {"history_visibility": visibility})
    return room


async def bodies(who: Client, room: str, **params: str) -> list[str]:
    data = await who.ok("GET", f"{V3}/rooms/{room}/messages",
                        params={"dir": "b", "limit": "50", **params})
    return [e["content"]["body"] for e in data["chunk"] if e["type"] == "m.room.message"]


async def test_joined_hides_what_came_before_the_join(http: aiohttp.ClientSession,
                                                      base: str) -> None:
    teacher = await client(http, base, "lehrer")
    anna = await client(http, base, "anna")
    room = await room_with(teacher, "joined")
    early = await send(teacher, room, text("vorher 1"))
    await send(teacher, room, text("vorher 2"))
    await anna.ok("POST", f"{V3}/rooms/{room}/join")
    await send(teacher, room, text("nachher"))
    assert await bodies(anna, room) == ["nachher"]
    assert await bodies(teacher, room) == ["nachher", "vorher 2", "vorher 1"]
    # Paging back in small pages reaches the room's start without the hidden ones.
    seen, token = [], None
    while True:
        params = {"dir": "b", "limit": "2", **({"from": token} if token else {})}
        data = await anna.ok("GET", f"{V3}/rooms/{room}/messages", params=params)
        seen += [e["content"].get("body") for e in data["chunk"]
                 if e["type"] == "m.room.message"]
        if "end" not in data:
            break
        token = data["end"]
    assert seen == ["nachher"]
    status, body = await anna.call("GET", f"{V3}/rooms/{room}/context/{early}")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await anna.call("GET", f"{V3}/rooms/{room}/event/{early}")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    # Forwards from the start as well.
    data = await anna.ok("GET", f"{V3}/rooms/{room}/messages",
                         params={"dir": "f", "limit": "50"})
    assert [e["content"]["body"] for e in data["chunk"]
            if e["type"] == "m.room.message"] == ["nachher"]


async def test_shared_shows_history_to_new_members(http: aiohttp.ClientSession,
                                                   base: str) -> None:
    teacher = await client(http, base, "lehrer")
    anna = await client(http, base, "anna")
    room = await room_with(teacher, "shared")
    early = await send(teacher, room, text("vorher"))
    await anna.ok("POST", f"{V3}/rooms/{room}/join")
    assert await bodies(anna, room) == ["vorher"]
    context = await anna.ok("GET", f"{V3}/rooms/{room}/context/{early}")
    assert context["event"]["event_id"] == early


async def test_invited_shows_from_the_invite_and_a_change_applies_after_it(
        http: aiohttp.ClientSession, base: str) -> None:
    teacher = await client(http, base, "lehrer")
    anna = await client(http, base, "anna")
    room = await room_with(teacher, "invited")
    await send(teacher, room, text("vor der Einladung"))
    await teacher.ok("POST", f"{V3}/rooms/{room}/invite", {"user_id": anna.user_id})
    await send(teacher, room, text("eingeladen"))
    await anna.ok("POST", f"{V3}/rooms/{room}/join")
    await send(teacher, room, text("dabei"))
    assert await bodies(anna, room) == ["dabei", "eingeladen"]
    # Made joined later: what was visible stays so, the earlier history stays hidden.
    await teacher.ok("PUT", f"{V3}/rooms/{room}/state/m.room.history_visibility/",
                     {"history_visibility": "joined"})
    await send(teacher, room, text("danach"))
    assert await bodies(anna, room) == ["danach", "dabei", "eingeladen"]
    # A later member of a "joined" room sees nothing of the invited era.
    ben = await client(http, base, "ben")
    await ben.ok("POST", f"{V3}/rooms/{room}/join")
    assert await bodies(ben, room) == []
