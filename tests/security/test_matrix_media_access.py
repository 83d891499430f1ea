"""Issue 19 point 10 (Matrix part): authenticated media of a private room are for
the people it was shared with, not for any logged-in user who knows the id.

Raw HTTP against a running school: the uploader always; members of a room where
an event names the file; members of an encrypted room the uploader posted into
after the upload; nobody else (404 M_NOT_FOUND, as for an unknown id)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import aiohttp
import pytest

from conf.app import School
from directory.model import Role
from tests.security.matrix_client import PASSWORD, V3, RawClient, matrix_server

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00"
       b"\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05"
       b"\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")
MEDIA = "/_matrix/client/v1/media"


@pytest.fixture
async def people(running_school: School) -> AsyncIterator[dict[str, RawClient]]:
    d = running_school.directory
    for login, role in (("lehrer", Role.TEACHER), ("anna", Role.PUPIL), ("ben", Role.PUPIL),
                        ("carl", Role.PUPIL)):
        await d.create_account(role=role, login=login, password=PASSWORD)
    base = matrix_server(running_school).base_url
    async with aiohttp.ClientSession() as http:
        yield {login: await RawClient(http, base).login(login)
               for login in ("lehrer", "anna", "ben", "carl")}


async def _upload(client: RawClient, data: bytes = PNG) -> str:
    body = await client.ok("POST", "/_matrix/media/v3/upload", raw=data,
                           headers={"Content-Type": "image/png"})
    return body["content_uri"]


async def _status(client: RawClient, uri: str) -> tuple[int, int]:
    """HTTP status of download and of thumbnail of ``uri`` for ``client``."""
    path = uri.removeprefix("mxc://")
    download, body = await client.call("GET", f"{MEDIA}/download/{path}")
    thumb, _ = await client.call("GET", f"{MEDIA}/thumbnail/{path}",
                                 params={"width": "32", "height": "32"})
    if download == 200:
        assert body == PNG
    else:
        assert body["errcode"] == "M_NOT_FOUND"
    return download, thumb


async def _room_with(owner: RawClient, *members: RawClient, encrypted: bool = False) -> str:
    state = [{"type": "m.room.encryption", "state_key": "",
              "content": {"algorithm": "m.megolm.v1.aes-sha2"}}] if encrypted else []
    room = (await owner.ok("POST", f"{V3}/createRoom", {
        "invite": [m.user_id for m in members], "initial_state": state}))["room_id"]
    for member in members:
        await member.ok("POST", f"{V3}/join/{quote(room)}", {})
    return room


async def test_media_of_a_room_are_for_its_members(people: dict[str, RawClient]) -> None:
    anna, ben, carl = people["anna"], people["ben"], people["carl"]
    uri = await _upload(anna)
    room = await _room_with(anna, ben)
    # Uploaded, posted nowhere yet: the uploader's alone.
    assert await _status(anna, uri) == (200, 200)
    assert await _status(ben, uri) == (404, 404)
    await anna.ok("PUT", f"{V3}/rooms/{quote(room)}/send/m.room.message/bild1", {
        "msgtype": "m.image", "body": "tafel.png", "url": uri,
        "info": {"mimetype": "image/png", "size": len(PNG)}})
    assert await _status(ben, uri) == (200, 200)
    assert await _status(carl, uri) == (404, 404)  # knows the id, shares no room
    # A member who leaves loses access with the room.
    await ben.ok("POST", f"{V3}/rooms/{quote(room)}/leave", {})
    assert await _status(ben, uri) == (404, 404)


async def test_encrypted_rooms_share_with_members_once_the_uploader_posted(
        people: dict[str, RawClient]) -> None:
    anna, ben, carl = people["anna"], people["ben"], people["carl"]
    room = await _room_with(anna, ben, encrypted=True)
    uri = await _upload(anna, PNG)  # the client encrypts files; the bytes do not matter
    assert await _status(ben, uri) == (404, 404)
    await anna.ok("PUT", f"{V3}/rooms/{quote(room)}/send/m.room.encrypted/e1", {
        "algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEn...", "sender_key": "x",
        "session_id": "s", "device_id": anna.device_id})
    assert await _status(ben, uri) == (200, 200)
    assert await _status(carl, uri) == (404, 404)


async def test_a_room_avatar_is_visible_to_the_rooms_members(
        people: dict[str, RawClient]) -> None:
    lehrer, carl, anna = people["lehrer"], people["carl"], people["anna"]
    room = await _room_with(lehrer, carl)
    uri = await _upload(lehrer)
    await lehrer.ok("PUT", f"{V3}/rooms/{quote(room)}/state/m.room.avatar", {"url": uri})
    assert await _status(carl, uri) == (200, 200)
    assert await _status(anna, uri) == (404, 404)
