"""Media between Synapse and a Schulhof school (spec v1.11 federation media,
``multipart/mixed``; issue 13.5): each side's server fetches the other's file over
``/_matrix/federation/v1/media/download`` and hands it to its user."""

from __future__ import annotations

import secrets
import struct
import urllib.parse
import zlib

import aiohttp
import pytest

from federation.matrix.client import download_media
from tests.e2e.matrix_synapse.conftest import (
    ON_SHARED_LOOP,
    PASSWORD,
    SYNAPSE_NAME,
    SYNAPSE_TEST_TIMEOUT,
    Interop,
)

pytestmark = [pytest.mark.synapse, pytest.mark.timeout(SYNAPSE_TEST_TIMEOUT), ON_SHARED_LOOP]

def _png(width: int, height: int) -> bytes:
    """A real PNG of random grey pixels (Synapse makes thumbnails of what it fetches)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    rows = b"".join(b"\x00" + secrets.token_bytes(width) for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


PNG = _png(40, 30)


async def test_schulhof_fetches_a_synapse_upload(interop: Interop) -> None:
    anna = await interop.synapse_user("anna", "Anna Synapse")
    async with aiohttp.ClientSession() as http, http.post(
            f"{interop.synapse.client_url}/_matrix/media/v3/upload?filename=bild.png",
            data=PNG, headers={"Authorization": f"Bearer {anna.access_token}",
                               "Content-Type": "image/png"}) as response:
        uri = (await response.json())["content_uri"]
    media_id = uri.rsplit("/", 1)[1]
    got = await download_media(interop.schools["a"].listener.client, SYNAPSE_NAME,
                               f"/_matrix/federation/v1/media/download/{media_id}",
                               max_bytes=1_000_000)
    assert (got.content_type, got.data) == ("image/png", PNG)


async def test_synapse_fetches_a_file_shared_with_its_user(interop: Interop) -> None:
    a = interop.schools["a"]
    anna = await interop.synapse_user("anna", "Anna Synapse")
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{a.matrix.base_url}/_matrix/client/v3/login", json={
                "type": "m.login.password", "password": PASSWORD,
                "identifier": {"type": "m.id.user", "user": interop.teacher()}}) as response:
            token = (await response.json())["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        async with http.post(f"{a.matrix.base_url}/_matrix/media/v3/upload?filename=b.png",
                             data=PNG, headers={**auth, "Content-Type": "image/png"}
                             ) as response:
            uri = (await response.json())["content_uri"]
        async with http.post(f"{a.matrix.base_url}/_matrix/client/v3/createRoom",
                             json={"name": "Mit Synapse", "invite": [anna.user_id]},
                             headers=auth) as response:
            room_id = (await response.json())["room_id"]
    # Anna joins from Synapse (make_join/send_join against the school).
    status, body = await interop.synapse.client(
        anna, "POST", f"/_matrix/client/v3/join/{urllib.parse.quote(room_id)}", {})
    assert status == 200, body
    async with aiohttp.ClientSession() as http, http.put(
            f"{a.matrix.base_url}/_matrix/client/v3/rooms/"
            f"{urllib.parse.quote(room_id)}/send/m.room.message/t1",
            json={"msgtype": "m.image", "body": "b.png", "url": uri},
            headers=auth) as response:
        assert response.status == 200
    media_id = uri.rsplit("/", 1)[1]
    status, body = await _synapse_download(interop, anna.access_token, media_id)
    assert (status, body) == (200, PNG)


async def _synapse_download(interop: Interop, token: str, media_id: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http, http.get(
            f"{interop.synapse.client_url}/_matrix/client/v1/media/download/a.test/{media_id}",
            headers={"Authorization": f"Bearer {token}"}) as response:
        return response.status, await response.read()


async def test_synapse_gets_no_file_that_was_not_shared(interop: Interop) -> None:
    a = interop.schools["a"]
    anna = await interop.synapse_user("anna", "Anna Synapse")
    account = await a.school.directory.get_account(interop.teacher())
    uri = await a.matrix.media.upload(account.id, PNG, "image/png", "privat.png")  # type: ignore[union-attr]
    status, _ = await _synapse_download(interop, anna.access_token, uri.rsplit("/", 1)[1])
    assert status == 404
