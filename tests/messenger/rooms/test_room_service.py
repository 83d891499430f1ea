"""The room service against a real database: event graph, hashes, concurrency,
cascades (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import func, select

from conf.app import School
from directory.model import Role
from messenger.events.hashing import content_hash, event_id_for, wire_form
from messenger.events.room_versions import room_version
from messenger.rooms.errors import AuthRuleViolation, Forbidden, RoomNotFound
from messenger.rooms.presets import CreateRoomRequest
from messenger.server import MatrixServer
from messenger.storage.tables import AccessTokenRow, DeviceRow, EventRow
from tests.support.matrix_in_process import PASSWORD, new_requester


@pytest.mark.parametrize("version", ["10", "11", "12"])
async def test_events_form_a_verifiable_linear_chain(school: School, server: MatrixServer,
                                                     version: str) -> None:
    teacher = await new_requester(school, server, "lehrer")
    room_id = await server.rooms.create_room(
        teacher, CreateRoomRequest(name="Chain", room_version=version))
    await asyncio.gather(*(server.rooms.send(teacher, room_id, "m.room.message",
                                             {"msgtype": "m.text", "body": str(n)})
                           for n in range(15)))
    async with school.db.read() as session:
        rows = (await session.scalars(select(EventRow).where(EventRow.room_id == room_id)
                                      .order_by(EventRow.stream_ordering))).all()
    assert len(rows) >= 15 + 6
    orderings = [r.stream_ordering for r in rows]
    assert orderings == list(range(orderings[0], orderings[0] + len(rows)))  # gapless
    previous = None
    for depth, row in enumerate(rows, start=1):
        pdu = json.loads(row.json)
        assert pdu["depth"] == depth
        assert pdu["prev_events"] == ([previous] if previous else [])
        assert event_id_for(pdu, room_version(version)) == row.event_id
        assert content_hash(pdu) == pdu["hashes"]["sha256"]
        assert ("redacts" in pdu) is False
        previous = row.event_id
    create = json.loads(rows[0].json)
    assert ("creator" in create["content"]) is (version == "10")
    if version == "12":  # MSC4291: the room id is the create event's hash
        assert room_id == "!" + rows[0].event_id[1:]
        assert rows[0].event_id not in json.loads(rows[1].json)["auth_events"]
        assert "room_id" not in wire_form(create)
    else:
        assert room_id.endswith(":schule.test")


async def test_version_12_rooms_leave_creators_out_of_the_power_levels(
        school: School, server: MatrixServer) -> None:
    teacher = await new_requester(school, server, "lehrer")
    colleague = await new_requester(school, server, "kollege")
    room_id = await server.rooms.create_room(teacher, CreateRoomRequest(
        name="V12", room_version="12"))
    power = await server.rooms.state_event(teacher.user_id, room_id, "m.room.power_levels", "")
    assert power.pdu["content"]["users"] == {}
    assert power.pdu["content"]["events"]["m.room.tombstone"] == 150
    # A trusted private chat's invitees are creators as well (MSC4289).
    chat = await server.rooms.create_room(teacher, CreateRoomRequest(
        preset="trusted_private_chat", invite=(colleague.user_id,), room_version="12"))
    create = await server.rooms.state_event(teacher.user_id, chat, "m.room.create", "")
    assert create.pdu["content"]["additional_creators"] == [colleague.user_id]
    assert create.pdu["room_id"] == chat
    power = await server.rooms.state_event(teacher.user_id, chat, "m.room.power_levels", "")
    assert power.pdu["content"]["users"] == {}
    with pytest.raises(AuthRuleViolation, match="creators must not be listed"):
        await server.rooms.set_state(teacher, chat, "m.room.power_levels", "",
                                     {**power.pdu["content"], "users": {teacher.user_id: 100}})


async def test_auth_errors_and_unknown_rooms(school: School, server: MatrixServer) -> None:
    teacher = await new_requester(school, server, "lehrer")
    pupil = await new_requester(school, server, "schueler", role=Role.PUPIL)
    room_id = await server.rooms.create_room(teacher, CreateRoomRequest())
    with pytest.raises(AuthRuleViolation, match="invite-only"):
        await server.rooms.join(pupil, room_id)
    with pytest.raises(AuthRuleViolation, match="not in the room"):
        await server.rooms.send(pupil, room_id, "m.room.message", {"body": "x"})
    with pytest.raises(RoomNotFound):
        await server.rooms.send(pupil, "!missing:schule.test", "m.room.message", {"body": "x"})
    with pytest.raises(Forbidden):
        await server.rooms.messages(pupil.user_id, room_id, from_position=None,
                                    to_position=None, backwards=True, limit=5)
    with pytest.raises(Forbidden, match="federation"):
        await server.rooms.invite(teacher, room_id, "@x:other.example")


async def test_trusted_private_chat_and_overrides(school: School,
                                                  server: MatrixServer) -> None:
    teacher = await new_requester(school, server, "lehrer")
    colleague = await new_requester(school, server, "kollege")
    room_id = await server.rooms.create_room(teacher, CreateRoomRequest(
        preset="trusted_private_chat", invite=(colleague.user_id,), is_direct=True,
        initial_state=(("m.room.history_visibility", "", {"history_visibility": "invited"}),),
        power_level_content_override={"events_default": 10}))
    power = await server.rooms.state_event(teacher.user_id, room_id, "m.room.power_levels", "")
    assert power.pdu["content"]["users"] == {teacher.user_id: 100, colleague.user_id: 100}
    assert power.pdu["content"]["events_default"] == 10
    visibility = await server.rooms.state_event(teacher.user_id, room_id,
                                                "m.room.history_visibility", "")
    assert visibility.pdu["content"] == {"history_visibility": "invited"}
    invite = await server.rooms.state_event(teacher.user_id, room_id, "m.room.member",
                                            colleague.user_id)
    assert invite.pdu["content"] == {"membership": "invite", "is_direct": True}


async def test_deleting_the_account_removes_devices_and_tokens(school: School,
                                                               server: MatrixServer) -> None:
    pupil = await new_requester(school, server, "schueler", role=Role.PUPIL)
    await school.directory.delete_account("schueler")
    async with school.db.read() as session:
        devices = await session.scalar(select(func.count()).select_from(DeviceRow).where(
            DeviceRow.account_id == pupil.account_id))
        tokens = await session.scalar(select(func.count()).select_from(AccessTokenRow).where(
            AccessTokenRow.account_id == pupil.account_id))
    assert devices == 0 and tokens == 0


async def test_suspended_accounts_lose_their_tokens_at_once(school: School,
                                                            server: MatrixServer) -> None:
    from directory.model import Status
    from messenger.sessions import UnknownToken

    await school.directory.create_account(role=Role.PUPIL, login="p", password=PASSWORD)
    result = await server.sessions.login("p", PASSWORD, device_id="DEV", display_name=None,
                                         client_ip="")
    await school.directory.set_status("p", Status.SUSPENDED)
    with pytest.raises(UnknownToken):
        await server.sessions.requester(result.access_token)
