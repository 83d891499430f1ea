"""Two schools with their client API and federation listener running (A = a.test,
B = b.test, addresses and DNS as in conftest.py), for the EDU and media tests.

Rooms across servers (joins) are fedrooms' part: until they land, ``shared_room``
makes the shared room by writing the memberships both schools would hold after a
join.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from conf.app import School
from conf.settings import FederationSettings
from conf.wiring import matrix
from directory.model import Role
from messenger.federation_listener import FederationListener
from messenger.rooms.presets import CreateRoomRequest
from messenger.server import MatrixServer
from messenger.storage import events as event_store
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


async def shared_room(a: Side, b: Side) -> str:
    """A room at A with lehrerb joined, as both schools would record it after a join."""
    room_id = await a.server.rooms.create_room_as("@lehrera:a.test", "Lehrer A",
                                                  CreateRoomRequest(name="Partnerklasse"))
    async with a.school.db.write() as session:
        session.add(MembershipRow(room_id=room_id, user_id="@lehrerb:b.test",
                                  membership="join", event_id="$join-b", stream_ordering=0))
    async with b.school.db.write() as session:
        await event_store.insert_room(session, room_id, "11", "@lehrera:a.test", False)
        for user in ("@lehrera:a.test", "@lehrerb:b.test"):
            session.add(MembershipRow(room_id=room_id, user_id=user, membership="join",
                                      event_id=f"$join-{user}", stream_ordering=0))
    return room_id


async def eventually(probe: Callable[[], Awaitable[T]], timeout: float = 15.0) -> T:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.05)
