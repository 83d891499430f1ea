"""A real Synapse (from PyPI, see tests/support/synapse.py) federating with Schulhof
schools on loopback (issue 13, "Interop with Synapse"); every test here is marked
``synapse`` (``pytest -m synapse`` runs them alone).

Addresses: each run takes a fresh block ``127.77.<n>.*`` (so two runs on one
machine do not meet): the DNS server on ``.53`` port 53 (Synapse's resolver
cannot be told another port), school A (``a.test``, which lists ``syn.test`` in
``federation.matrix_servers``) on ``.31``, school C (``c.test``, which does not)
on ``.33``, Synapse (``syn.test``) on ``.40``.  Names resolve both ways through
SRV ``_matrix-fed._tcp`` records in that DNS server; TLS is verified both ways
against the other side's self-signed certificate.

Starting Synapse and the two schools costs 6-15 s on a loaded machine, so all the
tests here share them (``interop_servers``, package-scoped, on the package's event
loop: the schools run in-process) and, with ``--dist loadgroup``, one xdist worker
(tests/support/xdist_groups.py).  Each test gets fresh names (``interop``): its
Synapse users, its teacher at each school and its room aliases carry a suffix of
their own, so no test sees another's users, devices or rooms, in any order.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from nio import AsyncClient

from conf.app import School
from conf.settings import FederationSettings
from directory.model import Role
from messenger.federation_listener import FederationListener
from messenger.server import MatrixServer
from tests.support.database_selection import GuardedDatabases
from tests.support.dns_server import DnsServer
from tests.support.schools import free_port, make_settings
from tests.support.synapse import SynapseServer, SynapseUser, ensure_synapse

pytestmark = pytest.mark.synapse

#: Every test module here runs its tests on the package's event loop, the one the
#: shared schools (``interop_servers``) run on: ``pytestmark = [..., ON_SHARED_LOOP]``.
ON_SHARED_LOOP = pytest.mark.asyncio(loop_scope="package")

PASSWORD = "Geheim-Passwort-1"
# The first test starts Synapse (seconds to import and migrate its database); each waits for
# federation round trips through it: more than the suite's 120 s on a loaded machine.
SYNAPSE_TEST_TIMEOUT = 300
SYNAPSE_NAME = "syn.test"


@pytest.fixture(scope="session")
def synapse_python() -> Path:
    """The Synapse virtualenv's Python (installed once, cached outside the repo)."""
    if os.geteuid() != 0:  # CI runs as root, so there these tests always run
        pytest.skip("the Synapse interop tests need root (a mount namespace, port 53)")
    return ensure_synapse()


@dataclass
class Schulhof:
    school: School

    @property
    def name(self) -> str:
        return self.school.settings.school.domain

    @property
    def listener(self) -> FederationListener:
        return next(s for s in self.school.services if isinstance(s, FederationListener))

    @property
    def matrix(self) -> MatrixServer:
        return next(s for s in self.school.services if isinstance(s, MatrixServer))


@dataclass
class InteropServers:
    """What the tests share: Synapse, schools A and C, the DNS server."""
    synapse: SynapseServer
    schools: dict[str, Schulhof]
    dns: DnsServer


@dataclass
class Interop:
    """One test's view of the shared servers: its own names (``tag``, unique in the
    run) for Synapse users, teachers and room aliases."""
    synapse: SynapseServer
    schools: dict[str, Schulhof]
    dns: DnsServer
    tag: str

    async def synapse_user(self, localpart: str, displayname: str) -> SynapseUser:
        """A new Synapse user ``<localpart><tag>``."""
        return await self.synapse.register(f"{localpart}{self.tag}", PASSWORD, displayname)

    def synapse_id(self, localpart: str) -> str:
        """The user id of :meth:`synapse_user` ``localpart``."""
        return f"@{localpart}{self.tag}:{SYNAPSE_NAME}"

    def teacher(self, school: str = "a") -> str:
        """The login of this test's teacher at ``school`` (display name "Lehrer A")."""
        return f"lehrer{school}{self.tag}"

    def teacher_id(self, school: str = "a") -> str:
        return f"@{self.teacher(school)}:{school}.test"

    def alias(self, name: str) -> str:
        """A room alias localpart of this test's own."""
        return f"{name}{self.tag}"


async def _dns_on_port_53() -> tuple[DnsServer, str]:
    for _ in range(20):
        block = f"127.77.{random.randint(1, 254)}"
        dns = DnsServer(f"{block}.53", 53)
        try:
            await dns.start()
        except OSError:
            await dns.stop()
            continue
        return dns, block
    raise RuntimeError("no loopback address with a free port 53")


@pytest.fixture(scope="package")
def interop_database_urls(databases: GuardedDatabases,
                         tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A fresh database for each of the two shared schools."""
    urls = {name: databases.fresh(tmp_path_factory.mktemp(f"db-{name}")) for name in ("a", "c")}
    yield urls
    for url in urls.values():
        databases.drop(url)


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def interop_servers(tmp_path_factory: pytest.TempPathFactory, synapse_python: Path,
                          interop_database_urls: dict[str, str]
                          ) -> AsyncIterator[InteropServers]:
    """Synapse and schools A and C for all the tests here (see the module docstring)."""
    tmp_path = tmp_path_factory.mktemp("interop")
    dns, block = await _dns_on_port_53()
    ips = {"a": f"{block}.31", "c": f"{block}.33"}
    settings = {name: make_settings(tmp_path / name, interop_database_urls[name],
                                    domain=f"{name}.test", bind=ip)
                for name, ip in ips.items()}
    certificates = [s.path(s.tls.certificate) for s in settings.values()]
    syn_ip = f"{block}.40"
    synapse = SynapseServer(synapse_python, tmp_path / "synapse", server_name=SYNAPSE_NAME,
                            ip=syn_ip, federation_port=free_port(syn_ip),
                            client_port=free_port(syn_ip), dns_ip=dns.host,
                            trusted_certificates=certificates)
    synapse.write_config()
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(b"".join(p.read_bytes() for p in [*certificates, synapse.certificate]))
    dns.add(f"_matrix-fed._tcp.{SYNAPSE_NAME}", "SRV",
            f"10 5 {synapse.federation_port} matrix.{SYNAPSE_NAME}.")
    dns.add(f"matrix.{SYNAPSE_NAME}", "A", syn_ip)
    schools: dict[str, Schulhof] = {}
    try:
        for name, s in settings.items():
            s = dataclasses.replace(s, federation=FederationSettings(
                dns_nameservers=(dns.host,), dns_port=dns.port, dns_cache=False,
                tls_ca_file=str(bundle),
                matrix_servers=(SYNAPSE_NAME,) if name == "a" else ()))
            dns.add(f"_matrix-fed._tcp.{name}.test", "SRV",
                    f"10 5 {s.listen.federation} matrix.{name}.test.")
            dns.add(f"matrix.{name}.test", "A", ips[name])
            school = await School.open(s, migrate=False)
            from conf.wiring import matrix

            school.services = matrix.build(school)
            for service in school.services:
                await service.start()
            schools[name] = Schulhof(school)
        await synapse.start()
        yield InteropServers(synapse, schools, dns)
    finally:
        await synapse.stop()
        for peer in schools.values():
            await peer.school.close()
        await dns.stop()


_TAGS = itertools.count(1)


@pytest_asyncio.fixture(loop_scope="package")
async def interop(interop_servers: InteropServers) -> Interop:
    """The shared servers with this test's own names, and a teacher of its own at
    each school; fails at once if Synapse died during an earlier test."""
    synapse = interop_servers.synapse
    process = synapse._process
    assert process is not None and process.returncode is None, (
        "Synapse exited during an earlier test:\n" + synapse.tail())
    view = Interop(synapse, interop_servers.schools, interop_servers.dns, tag=f"t{next(_TAGS)}")
    for name, peer in view.schools.items():
        await peer.school.directory.create_account(
            role=Role.TEACHER, login=view.teacher(name), password=PASSWORD,
            display_name=f"Lehrer {name.upper()}")
    return view


@pytest_asyncio.fixture(loop_scope="package")
async def clients() -> AsyncIterator[list[AsyncClient]]:
    """tests/e2e/conftest.py's ``clients`` on the package's event loop (the tests' loop)."""
    made: list[AsyncClient] = []
    yield made
    for client in made:
        await client.close()
