"""A real Synapse (from PyPI, see tests/support/synapse.py) federating with Schulhof
schools on loopback (issue 13, "Interop with Synapse"); every test here is marked
``synapse`` (``pytest -m synapse`` runs them alone).

Addresses: each test takes a fresh block ``127.77.<n>.*`` (so two runs on one
machine do not meet): the DNS server on ``.53`` port 53 (Synapse's resolver
cannot be told another port), school A (``a.test``, which lists ``syn.test`` in
``federation.matrix_servers``) on ``.31``, school C (``c.test``, which does not)
on ``.33``, Synapse (``syn.test``) on ``.40``.  Names resolve both ways through
SRV ``_matrix-fed._tcp`` records in that DNS server; TLS is verified both ways
against the other side's self-signed certificate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from conf.app import School
from conf.settings import FederationSettings
from directory.model import Role
from messenger.federation_listener import FederationListener
from messenger.server import MatrixServer
from tests.support.dns_server import DnsServer
from tests.support.schools import free_port, make_settings
from tests.support.synapse import SynapseServer, SynapseUser, ensure_synapse

pytestmark = pytest.mark.synapse

PASSWORD = "Geheim-Passwort-1"
# A test starts a Synapse (seconds to import and migrate its database) and waits for
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
class Interop:
    synapse: SynapseServer
    schools: dict[str, Schulhof]
    dns: DnsServer

    async def synapse_user(self, localpart: str, displayname: str) -> SynapseUser:
        return await self.synapse.register(localpart, PASSWORD, displayname)


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


@pytest.fixture
async def interop(tmp_path: Path, synapse_python: Path,
                  fresh_database_url: Callable[[], str]) -> AsyncIterator[Interop]:
    dns, block = await _dns_on_port_53()
    ips = {"a": f"{block}.31", "c": f"{block}.33"}
    settings = {}
    for name, ip in ips.items():
        url = await asyncio.to_thread(fresh_database_url)
        settings[name] = make_settings(tmp_path / name, url, domain=f"{name}.test", bind=ip)
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
            await school.directory.create_account(
                role=Role.TEACHER, login=f"lehrer{name}", password=PASSWORD,
                display_name=f"Lehrer {name.upper()}")
            from conf.wiring import matrix

            school.services = matrix.build(school)
            for service in school.services:
                await service.start()
            schools[name] = Schulhof(school)
        await synapse.start()
        yield Interop(synapse, schools, dns)
    finally:
        await synapse.stop()
        for peer in schools.values():
            await peer.school.close()
        await dns.stop()
