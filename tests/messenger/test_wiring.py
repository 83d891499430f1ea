"""conf.wiring.matrix: the client API on the configured port (off with -1, real port
with 0) and the federation listener beside it (off with listen.federation = -1)."""

from __future__ import annotations

import dataclasses

import aiohttp

from conf.app import School
from conf.wiring import matrix
from messenger.federation_listener import FederationListener
from messenger.server import MatrixServer


async def test_port_zero_reports_the_real_port(school: School) -> None:
    listen = dataclasses.replace(school.settings.listen, matrix=0, federation=-1)
    school.settings = dataclasses.replace(school.settings, listen=listen)
    services = matrix.build(school)
    assert len(services) == 1 and isinstance(services[0], MatrixServer)
    server = services[0]
    try:
        (description,) = await server.start()
        port = server.bound_port
        assert port and port > 0
        assert description.startswith(f"service=matrix addr=127.0.0.1:{port} ")
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://127.0.0.1:{port}/_matrix/client/versions") as r:
            assert r.status == 200
    finally:
        await server.stop()


async def test_minus_one_disables(school: School) -> None:
    listen = dataclasses.replace(school.settings.listen, matrix=-1)
    school.settings = dataclasses.replace(school.settings, listen=listen)
    assert matrix.build(school) == []


async def test_federation_listener_beside_the_client_api(school: School) -> None:
    services = matrix.build(school)
    assert [type(s) for s in services] == [MatrixServer, FederationListener]
    listener = services[1]
    assert isinstance(listener, FederationListener)
    assert listener.port == school.settings.listen.federation
    assert listener.context.server_name == school.settings.school.domain


async def test_two_servers_do_not_share_state(school: School) -> None:
    one, two = matrix.build(school)[0], matrix.build(school)[0]
    assert one.notifier is not two.notifier and one.sessions is not two.sessions
