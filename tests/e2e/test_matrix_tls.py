"""The client API over real TLS (the school's certificate) with matrix-nio verifying it."""

from __future__ import annotations

import ssl

import aiohttp
import pytest
from nio import AsyncClient, LoginResponse, RoomCreateResponse, WhoamiResponse

from conf.app import School
from directory.model import Role
from messenger.server import MatrixServer

PASSWORD = "correct horse battery"


async def test_nio_over_tls(school: School) -> None:
    settings = school.settings
    cert = settings.path(settings.tls.certificate)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, settings.path(settings.tls.key))
    await school.directory.create_account(role=Role.TEACHER, login="lehrer", password=PASSWORD)
    server = MatrixServer(db=school.db, directory=school.directory,
                          authenticator=school.authenticator, server_name="schule.test",
                          bind="127.0.0.1", port=0, ssl_context=server_ctx)
    (description,) = await server.start()
    client_ctx = ssl.create_default_context(cafile=str(cert))
    client = AsyncClient(server.base_url, "@lehrer:schule.test", ssl=client_ctx)
    try:
        assert "scheme=https" in description and server.base_url.startswith("https://")
        assert isinstance(await client.login(PASSWORD), LoginResponse)
        who = await client.whoami()
        assert isinstance(who, WhoamiResponse) and who.user_id == "@lehrer:schule.test"
        assert isinstance(await client.room_create(name="TLS"), RoomCreateResponse)
        # A client that does not trust the certificate gets no connection (nio itself
        # would retry forever, so ask with aiohttp).
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await http.get(f"{server.base_url}/_matrix/client/versions",
                               ssl=ssl.create_default_context())
    finally:
        await client.close()
        await server.stop()
