"""Media across servers (spec v1.11 authenticated media; issue 13.5): a file A's user
posts into a room shared with B is downloaded by B's user through B's client API,
which fetches it once over ``/_matrix/federation/v1/media/download`` (multipart)
and keeps it; files not shared with B's users are 404 at both servers; remote
files over the size limit or of a type a browser would run are refused."""

from __future__ import annotations

import secrets
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from federation.matrix.client import DownloadedMedia, FederationRequestError, download_media
from messenger.identity import Requester
from messenger.remote_media import RemoteMedia
from messenger.rooms.errors import Forbidden
from messenger.storage import media as media_rows
from messenger.storage.remote_media import RemoteMediaRow
from tests.e2e.matrix_federation.two_schools import (
    PASSWORD,
    Side,
    eventually,
    pair,
    shared_room,
)

__all__ = ["pair"]  # the fixture, imported for pytest

PNG = b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(3000)


async def _login(side: Side, login: str) -> str:
    async with aiohttp.ClientSession() as http, http.post(
            f"{side.server.base_url}/_matrix/client/v3/login",
            json={"type": "m.login.password", "password": PASSWORD,
                  "identifier": {"type": "m.id.user", "user": login}}) as response:
        return str((await response.json())["access_token"])


async def _upload(side: Side, token: str, data: bytes, content_type: str,
                  name: str) -> str:
    async with aiohttp.ClientSession() as http, http.post(
            f"{side.server.base_url}/_matrix/media/v3/upload?filename={name}", data=data,
            headers={"Authorization": f"Bearer {token}",
                     "Content-Type": content_type}) as response:
        return str((await response.json())["content_uri"])


async def _post_image(side: Side, token: str, room_id: str, uri: str) -> None:
    async with aiohttp.ClientSession() as http, http.put(
            f"{side.server.base_url}/_matrix/client/v3/rooms/{urllib.parse.quote(room_id)}"
            f"/send/m.room.message/{secrets.token_hex(4)}",
            json={"msgtype": "m.image", "body": "bild.png", "url": uri},
            headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 200, await response.text()


async def _download(side: Side, token: str, uri: str, kind: str = "download"
                    ) -> tuple[int, bytes, Any]:
    server, media_id = uri.removeprefix("mxc://").split("/")
    async with aiohttp.ClientSession() as http, http.get(
            f"{side.server.base_url}/_matrix/client/v1/media/{kind}/{server}/{media_id}",
            headers={"Authorization": f"Bearer {token}"}) as response:
        return response.status, await response.read(), response.headers


async def test_posted_file_crosses_and_is_kept(pair: dict[str, Side]) -> None:
    a, b = pair["a"], pair["b"]
    room_id = await shared_room(a, b)
    token_a, token_b = await _login(a, "lehrera"), await _login(b, "lehrerb")
    uri = await _upload(a, token_a, PNG, "image/png", "bild.png")
    await _post_image(a, token_a, room_id, uri)

    async def event_at_b() -> bool:  # the message came over to B
        async with b.school.db.read() as session:
            return await media_rows.referenced_in_rooms_of(session, uri, "@lehrerb:b.test", 0)

    assert await eventually(event_at_b)

    status, body, headers = await _download(b, token_b, uri)
    assert (status, body) == (200, PNG)
    assert headers["Content-Type"] == "image/png"
    assert "bild.png" in headers["Content-Disposition"]
    status, body, _ = await _download(b, token_b, uri, "thumbnail")
    assert (status, body) == (200, PNG)
    async with b.school.db.read() as session:
        kept = list(await session.scalars(select(RemoteMediaRow)))
    assert [(r.server_name, r.size, r.upload_name) for r in kept] == [
        ("a.test", len(PNG), "bild.png")]
    # Kept: A's federation listener going away does not matter any more.
    await a.listener.stop()
    status, body, _ = await _download(b, token_b, uri)
    assert (status, body) == (200, PNG)


async def _post_image_at(side: Side, room_id: str, uri: str) -> None:
    """An image event naming ``uri`` in B's copy of the room (as a received one would)."""
    from messenger.storage import events as event_store

    async with side.school.db.write() as session:
        position = await event_store.max_stream_ordering(session) + 1
        await event_store.insert_event(session, {
            "room_id": room_id, "sender": "@lehrera:a.test", "type": "m.room.message",
            "content": {"msgtype": "m.image", "body": "bild.png", "url": uri},
            "origin_server_ts": 1, "depth": 10, "prev_events": [], "auth_events": []},
            f"$img{secrets.token_hex(4)}", position)


async def test_files_not_shared_with_b_stay_at_a(pair: dict[str, Side]) -> None:
    a, b = pair["a"], pair["b"]
    await shared_room(a, b)
    token_a, token_b = await _login(a, "lehrera"), await _login(b, "lehrerb")
    uri = await _upload(a, token_a, PNG, "image/png", "privat.png")  # posted nowhere
    status, _, _ = await _download(b, token_b, uri)
    assert status == 404
    # And A refuses B's server itself, with the same 404 as for an unknown id.
    media_id = uri.rsplit("/", 1)[1]
    for path in (f"/_matrix/federation/v1/media/download/{media_id}",
                 "/_matrix/federation/v1/media/download/unbekannt"):
        with pytest.raises(FederationRequestError) as refused:
            await download_media(b.listener.client, "a.test", path, max_bytes=10_000)
        assert (refused.value.status, refused.value.errcode) == (404, "M_NOT_FOUND")


async def test_shared_file_over_federation_is_multipart(pair: dict[str, Side]) -> None:
    a, b = pair["a"], pair["b"]
    room_id = await shared_room(a, b)
    token_a = await _login(a, "lehrera")
    uri = await _upload(a, token_a, b"Hallo B", "text/plain", "gruss.txt")
    await _post_image(a, token_a, room_id, uri)
    media_id = uri.rsplit("/", 1)[1]
    got = await download_media(b.listener.client, "a.test",
                               f"/_matrix/federation/v1/media/download/{media_id}",
                               max_bytes=10_000)
    assert (got.content_type, got.data) == ("text/plain", b"Hallo B")
    with pytest.raises(FederationRequestError, match="larger than 3 bytes"):
        await download_media(b.listener.client, "a.test",
                             f"/_matrix/federation/v1/media/download/{media_id}",
                             max_bytes=3)
    with pytest.raises(FederationRequestError) as no_thumbnail:  # text has no thumbnail
        await download_media(b.listener.client, "a.test",
                             f"/_matrix/federation/v1/media/thumbnail/{media_id}",
                             max_bytes=10_000)
    assert no_thumbnail.value.status == 404


async def test_remote_content_checks(pair: dict[str, Side], tmp_path: Path) -> None:
    """What another server hands over is checked before it is kept: a type a browser
    would run is refused (403), as a local upload of it would be."""
    b = pair["b"]
    room_id = await shared_room(pair["a"], b)
    uri = "mxc://a.test/boese"
    await _post_image_at(b, room_id, uri)

    async def html(server: str, media_id: str, limit: int) -> DownloadedMedia:
        return DownloadedMedia("text/html; charset=utf-8", "", b"<script>alert(1)</script>")

    root = tmp_path / "remote-media"
    remote = RemoteMedia(b.school.db, root, html, 1000)
    account = await b.school.directory.get_account("lehrerb")
    viewer = Requester(user_id="@lehrerb:b.test", account=account, device_id="D")
    with pytest.raises(Forbidden):
        await remote.get("a.test", "boese", viewer)
    assert not root.exists()  # nothing kept


@pytest.mark.parametrize("media_id", ["abc%00def", "x" * 300])
async def test_unstorable_media_ids_are_refused(pair: dict[str, Side], media_id: str) -> None:
    with pytest.raises(FederationRequestError) as refused:
        await download_media(pair["b"].listener.client, "a.test",
                             f"/_matrix/federation/v1/media/download/{media_id}",
                             max_bytes=10_000)
    assert (refused.value.status, refused.value.errcode) == (400, "M_INVALID_PARAM")
