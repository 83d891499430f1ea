"""Media over real sockets: nio uploads and downloads; limits, types, headers, the
frozen legacy endpoints; the file is on disk content-addressed."""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator

import aiohttp
import pytest
from nio import (
    AsyncClient,
    DownloadResponse,
    JoinResponse,
    LoginResponse,
    RoomCreateResponse,
    RoomSendResponse,
    UploadResponse,
)

from conf.app import School
from directory.model import Role
from messenger.server import MatrixServer

DOMAIN = "schule.test"
PASSWORD = "correct horse battery"
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00"
       b"\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05"
       b"\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")


@pytest.fixture
async def server(running_school: School) -> MatrixServer:
    await running_school.directory.create_account(role=Role.PUPIL, login="anna",
                                                  password=PASSWORD)
    await running_school.directory.create_account(role=Role.PUPIL, login="ben",
                                                  password=PASSWORD)
    return next(s for s in running_school.services if isinstance(s, MatrixServer))


@pytest.fixture
async def anna(server: MatrixServer) -> AsyncIterator[AsyncClient]:
    client = AsyncClient(server.base_url, f"@anna:{DOMAIN}")
    assert isinstance(await client.login(PASSWORD), LoginResponse)
    yield client
    await client.close()


async def test_nio_upload_and_download(running_school: School, server: MatrixServer,
                                       anna: AsyncClient) -> None:
    uploaded, _keys = await anna.upload(io.BytesIO(PNG), content_type="image/png",
                                        filename="punkt.png", filesize=len(PNG))
    assert isinstance(uploaded, UploadResponse), uploaded
    assert uploaded.content_uri.startswith(f"mxc://{DOMAIN}/")
    digest = hashlib.sha256(PNG).hexdigest()
    on_disk = running_school.settings.data_dir / "media" / digest[:2] / digest[2:4] / digest
    assert on_disk.read_bytes() == PNG

    # Another pupil downloads it through nio once anna shared it in a room with him
    # (media are for the people they were shared with: messenger.media).
    ben = AsyncClient(server.base_url, f"@ben:{DOMAIN}")
    try:
        assert isinstance(await ben.login(PASSWORD), LoginResponse)
        assert not isinstance(await ben.download(uploaded.content_uri), DownloadResponse)
        room = await anna.room_create(invite=[ben.user_id])
        assert isinstance(room, RoomCreateResponse), room
        assert isinstance(await ben.join(room.room_id), JoinResponse)
        sent = await anna.room_send(room.room_id, "m.room.message", {
            "msgtype": "m.image", "body": "punkt.png", "url": uploaded.content_uri})
        assert isinstance(sent, RoomSendResponse), sent
        got = await ben.download(uploaded.content_uri)
        assert isinstance(got, DownloadResponse), got
        assert got.body == PNG and got.content_type == "image/png"
        assert got.filename == "punkt.png"
        thumb = await ben.thumbnail(DOMAIN, uploaded.content_uri.rsplit("/", 1)[1], 32, 32)
        assert thumb.body == PNG  # no image library: the original is the thumbnail
    finally:
        await ben.close()

    media_id = uploaded.content_uri.rsplit("/", 1)[1]
    auth = {"Authorization": f"Bearer {anna.access_token}"}
    base = server.base_url
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/_matrix/client/v1/media/download/{DOMAIN}/{media_id}/x.png",
                            headers=auth) as r:
            assert r.status == 200
            assert r.headers["Content-Security-Policy"].startswith("sandbox")
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert r.headers["Content-Disposition"] == "inline; filename*=utf-8''x.png"
        # No token, no media; the legacy endpoint is frozen.
        async with http.get(f"{base}/_matrix/client/v1/media/download/{DOMAIN}/{media_id}") as r:
            assert r.status == 401
        async with http.get(f"{base}/_matrix/media/v3/download/{DOMAIN}/{media_id}") as r:
            assert r.status == 404 and (await r.json())["errcode"] == "M_NOT_FOUND"
        async with http.get(f"{base}/_matrix/client/v1/media/download/{DOMAIN}/nope",
                            headers=auth) as r:
            assert r.status == 404 and (await r.json())["errcode"] == "M_NOT_FOUND"
        async with http.get(f"{base}/_matrix/client/v1/media/config", headers=auth) as r:
            limit = (await r.json())["m.upload.size"]
            assert limit == server.limits.max_upload_bytes


async def test_refused_types_sizes_and_attachments(server: MatrixServer,
                                                   anna: AsyncClient) -> None:
    base = server.base_url
    auth = {"Authorization": f"Bearer {anna.access_token}"}
    async with aiohttp.ClientSession() as http:
        for kind in ("text/html", "text/html; charset=utf-8", "image/svg+xml",
                     "application/javascript"):
            async with http.post(f"{base}/_matrix/media/v3/upload", data=b"<script>x</script>",
                                 headers={**auth, "Content-Type": kind}) as r:
                assert r.status == 403, kind
                assert (await r.json())["errcode"] == "M_FORBIDDEN"
        big = b"x" * (server.limits.max_upload_bytes + 1)
        async with http.post(f"{base}/_matrix/media/v3/upload", data=big,
                             headers={**auth, "Content-Type": "application/zip"}) as r:
            assert r.status == 413 and (await r.json())["errcode"] == "M_TOO_LARGE"

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the read is capped
            for _ in range(server.limits.max_upload_bytes // 65536 + 2):
                yield b"y" * 65536

        async with http.post(f"{base}/_matrix/media/v3/upload", data=chunks(),
                             headers={**auth, "Content-Type": "application/zip"}) as r:
            assert r.status == 413
        async with http.post(f"{base}/_matrix/media/v3/upload?filename=Arbeitsblatt%201.docx",
                             data=b"PK\x03\x04 not really a docx",
                             headers={**auth, "Content-Type": "application/vnd.openxmlformats-"
                                      "officedocument.wordprocessingml.document"}) as r:
            assert r.status == 200
            uri = (await r.json())["content_uri"]
        async with http.get(f"{base}/_matrix/client/v1/media/download/{uri[6:]}",
                            headers=auth) as r:
            assert r.headers["Content-Disposition"] == \
                "attachment; filename*=utf-8''Arbeitsblatt%201.docx"
            assert await r.read() == b"PK\x03\x04 not really a docx"
        async with http.get(f"{base}/_matrix/client/v1/media/thumbnail/{uri[6:]}"
                            "?width=32&height=32", headers=auth) as r:
            assert r.status == 404
