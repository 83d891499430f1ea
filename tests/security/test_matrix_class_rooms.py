"""Issue 19 point 9: a group member who leaves the class room can come back.

Against a running school over raw HTTP: the pupil leaves the (invite-only)
class room; the group sync offers it again as an invitation (which /sync shows
and which the sync never accepts for her); she can also join by the room's
alias at any time, even after declining; a pupil outside the group cannot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import aiohttp
import pytest

from conf.app import School
from directory.model import GroupKind, MemberRole, Role
from messenger.server import MatrixServer
from tests.security.matrix_client import DOMAIN, PASSWORD, V3, RawClient, matrix_server

ALIAS = f"#7b:{DOMAIN}"


@pytest.fixture
async def setup(running_school: School) -> AsyncIterator[tuple[MatrixServer, str,
                                                               dict[str, RawClient]]]:
    d = running_school.directory
    for login, role in (("lehrer", Role.TEACHER), ("anna", Role.PUPIL), ("ben", Role.PUPIL)):
        await d.create_account(role=role, login=login, password=PASSWORD)
    await d.create_group("7b", kind=GroupKind.CLASS, display_name="Klasse 7b")
    await d.add_member("7b", "lehrer", MemberRole.OWNER)
    await d.add_member("7b", "anna")
    server = matrix_server(running_school)
    await server.school_rooms.sync_group_rooms()
    room_id = await server.school_rooms.room_of_group("7b")
    assert room_id is not None
    async with aiohttp.ClientSession() as http:
        yield server, room_id, {login: await RawClient(http, server.base_url).login(login)
                                for login in ("anna", "ben")}


async def _rooms(client: RawClient) -> dict[str, set[str]]:
    body = await client.ok("GET", f"{V3}/sync", params={"timeout": "0"})
    return {kind: set(body.get("rooms", {}).get(kind, {})) for kind in ("join", "invite")}


async def test_a_pupil_who_left_the_class_room_can_come_back(
        setup: tuple[MatrixServer, str, dict[str, RawClient]]) -> None:
    server, room_id, people = setup
    anna = people["anna"]
    assert room_id in (await _rooms(anna))["join"]
    await anna.ok("POST", f"{V3}/rooms/{quote(room_id)}/leave", {})

    # The group sync offers the room again; it does not pull her back itself.
    await server.school_rooms.sync_group_rooms()
    await server.school_rooms.sync_group_rooms()
    seen = await _rooms(anna)
    assert room_id in seen["invite"] and room_id not in seen["join"]
    await anna.ok("POST", f"{V3}/join/{quote(room_id)}", {})
    assert room_id in (await _rooms(anna))["join"]


async def test_a_member_who_declined_can_still_join_by_alias(
        setup: tuple[MatrixServer, str, dict[str, RawClient]]) -> None:
    server, room_id, people = setup
    anna, ben = people["anna"], people["ben"]
    await anna.ok("POST", f"{V3}/rooms/{quote(room_id)}/leave", {})
    await server.school_rooms.sync_group_rooms()
    await anna.ok("POST", f"{V3}/rooms/{quote(room_id)}/leave", {})  # declines the offer
    await server.school_rooms.sync_group_rooms()
    assert room_id not in (await _rooms(anna))["invite"]  # her decision stands...
    joined = await anna.ok("POST", f"{V3}/join/{quote(ALIAS)}", {})  # ...until she returns
    assert joined["room_id"] == room_id and room_id in (await _rooms(anna))["join"]
    # Someone outside the group: the room stays invite-only.
    status, body = await ben.call("POST", f"{V3}/join/{quote(ALIAS)}", {})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
