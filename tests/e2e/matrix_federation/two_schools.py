"""Two schools with their client API and federation listener running (A = a.test,
B = b.test, addresses and DNS as in conftest.py), for the EDU and media tests.

``shared_room`` makes a room at A that B's teacher joins over federation.
"""

from __future__ import annotations

import asyncio
import dataclasses
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import aiohttp
import pytest

from conf.app import School
from conf.settings import FederationSettings
from conf.wiring import matrix
from directory.model import Role
from messenger.federation_listener import FederationListener
from messenger.server import MatrixServer
from messenger.storage.tables import MembershipRow
from tests.e2e.matrix_federation.conftest import IPS, PARTNERS
from tests.support.dns_server import DnsServer
from tests.support.schools import make_settings

PASSWORD = "Geheim-Passwort-1"

T = TypeVar("T")


@dataclass
class Side:
    school: School
    server: MatrixServer
    listener: FederationListener

    @property
    def name(self) -> str:
        return self.school.settings.school.domain


@pytest.fixture
async def pair(tmp_path: Path, fresh_database_url: Callable[[], str]
               ) -> AsyncIterator[dict[str, Side]]:
    """Schools A and B with their client API and federation listener running."""
    dns = DnsServer()
    await dns.start()
    settings = {}
    for name in ("a", "b"):
        url = await asyncio.to_thread(fresh_database_url)
        settings[name] = make_settings(tmp_path / name, url, domain=f"{name}.test",
                                       bind=IPS[name], partners=PARTNERS[name])
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(b"".join(s.path(s.tls.certificate).read_bytes()
                                for s in settings.values()))
    sides: dict[str, Side] = {}
    for name, s in settings.items():
        s = dataclasses.replace(s, federation=FederationSettings(
            dns_nameservers=(dns.host,), dns_port=dns.port, dns_cache=False,
            tls_ca_file=str(bundle)))
        dns.add(f"_matrix-fed._tcp.{name}.test", "SRV",
                f"10 5 {s.listen.federation} matrix.{name}.test.")
        dns.add(f"matrix.{name}.test", "A", IPS[name])
        school = await School.open(s, migrate=False)
        await school.directory.create_account(role=Role.TEACHER, login=f"lehrer{name}",
                                              password=PASSWORD)
        school.services = matrix.build(school)
        for service in school.services:
            await service.start()
        server = next(x for x in school.services if isinstance(x, MatrixServer))
        listener = next(x for x in school.services if isinstance(x, FederationListener))
        sides[name] = Side(school, server, listener)
    yield sides
    for side in sides.values():
        await side.school.close()
    await dns.stop()


async def login(side: Side, login_name: str) -> str:
    """An access token of ``login_name`` at ``side``'s client API."""
    async with aiohttp.ClientSession() as http, http.post(
            f"{side.server.base_url}/_matrix/client/v3/login",
            json={"type": "m.login.password", "password": PASSWORD,
                  "identifier": {"type": "m.id.user", "user": login_name}}) as response:
        return str((await response.json())["access_token"])


async def _client(side: Side, token: str, method: str, path: str,
                  body: object) -> dict[str, object]:
    async with aiohttp.ClientSession() as http, http.request(
            method, f"{side.server.base_url}{path}", json=body,
            headers={"Authorization": f"Bearer {token}"}) as response:
        answer = await response.json()
        assert response.status == 200, answer
        return dict(answer)


async def shared_room(a: Side, b: Side) -> str:
    """A room lehrera made at A, lehrerb of B invited and joined over federation
    (invite v2, make_join/send_join), once both schools record the join."""
    token_a, token_b = await login(a, "lehrera"), await login(b, "lehrerb")
    created = await _client(a, token_a, "POST", "/_matrix/client/v3/createRoom",
                            {"name": "Partnerklasse", "invite": ["@lehrerb:b.test"]})
    room_id = str(created["room_id"])
    await _client(b, token_b, "POST",
                  f"/_matrix/client/v3/join/{urllib.parse.quote(room_id)}", {})

    async def joined_at_a() -> bool:
        async with a.school.db.read() as session:
            row = await session.get(MembershipRow, (room_id, "@lehrerb:b.test"))
            return row is not None and row.membership == "join"

    assert await eventually(joined_at_a), "B's join did not reach A"
    return room_id


async def eventually(probe: Callable[[], Awaitable[T]], timeout: float = 15.0) -> T:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.05)
