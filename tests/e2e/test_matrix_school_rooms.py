"""School rooms seen by a real client: a pupil's nio sync shows the class room the
server made from the directory, announcements only from the teacher, and the
room goes away from the pupil's list when the directory removes them."""

from __future__ import annotations

import pytest
from nio import AsyncClient, LoginResponse, RoomMessageText, RoomSendResponse, SyncResponse

from conf.app import School
from directory.model import GroupKind, MemberRole, Role
from messenger.server import MatrixServer

DOMAIN = "schule.test"
PASSWORD = "correct horse battery"


@pytest.fixture
async def server(running_school: School) -> MatrixServer:
    d = running_school.directory
    await d.create_account(role=Role.TEACHER, login="lehrer", password=PASSWORD)
    await d.create_account(role=Role.PUPIL, login="anna", password=PASSWORD)
    await d.create_group("7b", kind=GroupKind.CLASS, display_name="Klasse 7b")
    await d.add_member("7b", "lehrer", MemberRole.OWNER)
    return next(s for s in running_school.services if isinstance(s, MatrixServer))


async def login(server: MatrixServer, login: str, made: list[AsyncClient]) -> AsyncClient:
    client = AsyncClient(server.base_url, f"@{login}:{DOMAIN}")
    made.append(client)
    assert isinstance(await client.login(PASSWORD), LoginResponse)
    return client


async def test_pupil_sees_class_room_and_leaves_with_the_directory(
        running_school: School, server: MatrixServer, clients: list[AsyncClient]) -> None:
    pupil = await login(server, "anna", clients)
    teacher = await login(server, "lehrer", clients)
    first = await pupil.sync(timeout=0)
    assert isinstance(first, SyncResponse) and not first.rooms.join

    await running_school.directory.add_member("7b", "anna")
    await server.school_rooms.sync_group_rooms()
    room_id = await server.school_rooms.room_of_group("7b")
    synced = await pupil.sync(timeout=5000)
    assert isinstance(synced, SyncResponse), synced
    assert room_id in synced.rooms.join
    room = pupil.rooms[room_id]
    assert room.display_name == "Klasse 7b"
    assert room.canonical_alias == f"#7b:{DOMAIN}"
    assert room.power_levels.get_user_level(f"@lehrer:{DOMAIN}") == 50
    assert room.power_levels.get_user_level(f"@schulhof:{DOMAIN}") == 100

    # An announcement room: the teacher posts, the pupil may not.
    await teacher.sync(timeout=0)
    sent = await teacher.room_send(room_id, "m.room.message",
                                   {"msgtype": "m.text", "body": "Elternabend am Montag"})
    assert isinstance(sent, RoomSendResponse), sent
    refused = await pupil.room_send(room_id, "m.room.message",
                                    {"msgtype": "m.text", "body": "Ich auch!"})
    assert not isinstance(refused, RoomSendResponse)
    assert refused.status_code == "M_FORBIDDEN"
    news = await pupil.sync(timeout=5000)
    assert [e.body for e in news.rooms.join[room_id].timeline.events
            if isinstance(e, RoomMessageText)] == ["Elternabend am Montag"]

    await running_school.directory.remove_member("7b", "anna")
    await server.school_rooms.sync_group_rooms()
    gone = await pupil.sync(timeout=5000)
    assert isinstance(gone, SyncResponse), gone
    assert room_id in gone.rooms.leave
    assert room_id not in (await pupil.joined_rooms()).rooms
