"""The school's space over raw HTTP: listed in the room directory, holding every
group room, each user seeing the class rooms they are in (messenger.school_space)."""

from __future__ import annotations

from urllib.parse import quote

import aiohttp
from sqlalchemy import text

from conf.app import School
from directory.model import GroupKind, MemberRole, Role
from messenger.server import MatrixServer
from tests.e2e import test_matrix_api
from tests.e2e.test_matrix_api import PASSWORD, V3, client

http = test_matrix_api.http
V1 = "/_matrix/client/v1"


async def test_the_school_space_holds_the_group_rooms(running_school: School,
                                                      http: aiohttp.ClientSession) -> None:
    d = running_school.directory
    await d.create_account(role=Role.TEACHER, login="lehrer", password=PASSWORD)
    await d.create_account(role=Role.PUPIL, login="anna", password=PASSWORD)
    for group in ("7b", "8a"):
        await d.create_group(group, kind=GroupKind.CLASS, display_name=f"Klasse {group}")
        await d.add_member(group, "lehrer", MemberRole.OWNER)
    await d.add_member("7b", "anna")
    server = next(s for s in running_school.services if isinstance(s, MatrixServer))
    keeper = server.school_rooms
    await keeper.sync_group_rooms()
    rooms = {g: await keeper.room_of_group(g) for g in ("7b", "8a")}
    base = server.base_url
    anna = await client(http, base, "anna")
    listed = await anna.ok("GET", f"{V3}/publicRooms")
    [space] = [r["room_id"] for r in listed["chunk"] if r.get("name") == "Schule"]
    resolved = await anna.ok("GET", f"{V3}/directory/room/{quote('#schulhof:schule.test')}")
    assert resolved["room_id"] == space
    await anna.ok("POST", f"{V3}/join/{space}")
    seen = await anna.ok("GET", f"{V1}/rooms/{space}/hierarchy")
    assert [r["room_id"] for r in seen["rooms"]] == [space, rooms["7b"]]  # not 8a
    assert seen["rooms"][0]["room_type"] == "m.space"
    teacher = await client(http, base, "lehrer")
    seen = await teacher.ok("GET", f"{V1}/rooms/{space}/hierarchy")
    assert sorted(r["room_id"] for r in seen["rooms"][1:]) == sorted(rooms.values())
    # Only the server changes the space.
    status, data = await anna.call("PUT", f"{V3}/rooms/{space}/state/m.space.child/"
                                          f"{quote('!x:schule.test')}", {"via": ["x"]})
    assert (status, data["errcode"]) == (403, "M_FORBIDDEN")
    # A deleted group leaves the space; a second run changes nothing else.
    gone = (await d.get_group("8a")).id
    async with running_school.db.write() as session:  # as an import removing the class
        for table, column in (("matrix_group_rooms", "group_id"), ("group_members", "group_id"),
                              ("groups", "id")):
            await session.execute(text(f"DELETE FROM {table} WHERE {column} = :g"), {"g": gone})
    await keeper.sync_group_rooms()
    await keeper.sync_group_rooms()
    seen = await teacher.ok("GET", f"{V1}/rooms/{space}/hierarchy")
    assert [r["room_id"] for r in seen["rooms"]] == [space, rooms["7b"]]
    assert await keeper.space.space_id() == space
