"""Issue 19 point 3: to-device messages follow the role policy of direct chats.

A parent may not reach a pupil who is not their child through
PUT /sendToDevice (403 M_FORBIDDEN, nothing in the pupil's /sync).  End-to-end
encryption traffic (room keys, key requests, verification) is allowed between
people who share a room, and a user's own devices may always talk."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from conf.app import School
from directory.model import Role
from tests.security.matrix_client import PASSWORD, V3, RawClient, matrix_server

_txn = itertools.count()


@pytest.fixture
async def people(running_school: School) -> AsyncIterator[dict[str, RawClient]]:
    d = running_school.directory
    for login, role in (("lehrer", Role.TEACHER), ("mama", Role.PARENT),
                        ("anna", Role.PUPIL), ("ben", Role.PUPIL)):
        await d.create_account(role=role, login=login, password=PASSWORD)
    await d.link_parent("mama", "anna")
    base = matrix_server(running_school).base_url
    async with aiohttp.ClientSession() as http:
        clients = {login: await RawClient(http, base).login(login)
                   for login in ("lehrer", "mama", "anna", "ben")}
        clients["ben2"] = await RawClient(http, base).login("ben")
        yield clients


async def _send(sender: RawClient, event_type: str, to: RawClient,
                content: dict[str, Any] | None = None) -> tuple[int, Any]:
    return await sender.call(
        "PUT", f"{V3}/sendToDevice/{quote(event_type)}/t{next(_txn)}",
        {"messages": {to.user_id: {to.device_id: content or {"geheim": event_type}}}})


async def _since(client: RawClient) -> str:
    return (await client.ok("GET", f"{V3}/sync", params={"timeout": "0"}))["next_batch"]


async def _received(client: RawClient, since: str) -> list[tuple[str, str]]:
    body = await client.ok("GET", f"{V3}/sync", params={"since": since, "timeout": "300"})
    return [(e["sender"], e["type"]) for e in body.get("to_device", {}).get("events", [])]


async def test_a_parent_cannot_message_a_pupil_who_is_not_their_child(
        people: dict[str, RawClient]) -> None:
    mama, anna, ben = people["mama"], people["anna"], people["ben"]
    since_ben, since_anna = await _since(ben), await _since(anna)
    for event_type in ("m.custom.x", "m.room_key_request", "m.room.encrypted",
                       "m.key.verification.request"):
        status, body = await _send(mama, event_type, ben)
        assert (status, body.get("errcode")) == (403, "M_FORBIDDEN"), event_type
    status, body = await _send(ben, "m.custom.x", mama)  # nor the other way round
    assert (status, body.get("errcode")) == (403, "M_FORBIDDEN")
    await mama.ok("PUT", f"{V3}/sendToDevice/m.custom.x/t{next(_txn)}",
                  {"messages": {anna.user_id: {"*": {"hallo": "Kind"}}}})
    assert await _received(ben, since_ben) == []
    assert await _received(anna, since_anna) == [(mama.user_id, "m.custom.x")]


async def test_key_sharing_between_room_mates_and_own_devices_still_works(
        people: dict[str, RawClient]) -> None:
    lehrer, mama, ben, ben2 = people["lehrer"], people["mama"], people["ben"], people["ben2"]
    # A teacher's room with a parent and a pupil who is not theirs (the teacher may
    # invite both): they now share a room, so clients exchange room keys.
    room = (await lehrer.ok("POST", f"{V3}/createRoom", {
        "invite": [mama.user_id, ben.user_id]}))["room_id"]
    await ben.ok("POST", f"{V3}/join/{quote(room)}", {})
    since = await _since(ben)
    for event_type in ("m.room.encrypted", "m.room_key_request"):
        await mama.ok("PUT", f"{V3}/sendToDevice/{event_type}/t{next(_txn)}",
                      {"messages": {ben.user_id: {ben.device_id: {"ciphertext": {}}}}})
    # ...but nothing else: the room does not make them direct-chat partners.
    status, body = await _send(mama, "m.custom.x", ben)
    assert (status, body.get("errcode")) == (403, "M_FORBIDDEN")
    await _send(ben2, "m.custom.x", ben)  # a pupil's own other device
    got = await _received(ben, since)
    assert sorted(got) == sorted([(mama.user_id, "m.room.encrypted"),
                                  (mama.user_id, "m.room_key_request"),
                                  (ben.user_id, "m.custom.x")])
