"""Two and three schools for the Matrix federation tests, each with its own
database, certificate and signing key, on its own loopback address; a loopback
DNS server publishes their SRV ``_matrix-fed._tcp`` records, as ``schulhof
dns-records`` prints them, and each trusts the others' self-signed
certificates through ``federation.tls_ca_file``.

School A (a.test) listens on 127.0.0.31, B (b.test) on 127.0.0.32, C (c.test,
no partner of B) on 127.0.0.33.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yarl

from conf.app import School
from conf.commands.school import KEYS_DIR
from conf.settings import FederationSettings
from conf.wiring.matrix import build as build_matrix
from conf.wiring.matrix import federation_listener
from directory.model import Role
from federation.keys import SchoolKeyPaths
from federation.matrix.signed_json import SigningKey
from messenger.federation_listener import FederationListener
from messenger.server import MatrixServer
from tests.support.dns_server import DnsServer
from tests.support.schools import make_settings

IPS = {"a": "127.0.0.31", "b": "127.0.0.32", "c": "127.0.0.33"}
PARTNERS = {"a": ("b.test",), "b": ("a.test",), "c": ("b.test",)}


@dataclass
class Peer:
    school: School
    listener: FederationListener
    ip: str

    @property
    def name(self) -> str:
        return self.school.settings.school.domain

    @property
    def key(self) -> SigningKey:
        path = SchoolKeyPaths.in_dir(self.school.settings.base_dir / KEYS_DIR).matrix_signing
        return SigningKey.from_pem(path.read_bytes())

    def url(self, path: str) -> yarl.URL:
        # encoded=True: sent byte for byte as signed, not re-quoted by the client.
        return yarl.URL(f"https://{self.ip}:{self.listener.port}{path}", encoded=True)


@pytest.fixture
async def peers(tmp_path: Path, fresh_database_url: Callable[[], str]
                ) -> AsyncIterator[dict[str, Peer]]:
    dns = DnsServer()
    await dns.start()
    settings = {}
    for name, ip in IPS.items():
        url = await asyncio.to_thread(fresh_database_url)
        settings[name] = make_settings(tmp_path / name, url, domain=f"{name}.test", bind=ip,
                                       partners=PARTNERS[name])
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(b"".join(s.path(s.tls.certificate).read_bytes()
                                for s in settings.values()))
    peers: dict[str, Peer] = {}
    for name, s in settings.items():
        s = dataclasses.replace(s, federation=FederationSettings(
            dns_nameservers=(dns.host,), dns_port=dns.port, dns_cache=False,
            tls_ca_file=str(bundle)))
        dns.add(f"_matrix-fed._tcp.{name}.test", "SRV",
                f"10 5 {s.listen.federation} matrix.{name}.test.")
        dns.add(f"matrix.{name}.test", "A", IPS[name])
        school = await School.open(s, migrate=False)
        await school.directory.create_account(role=Role.TEACHER, login=f"lehrer{name}",
                                              password="Geheim-Passwort-1",
                                              display_name=f"Lehrer {name.upper()}")
        listener = federation_listener(school)
        await listener.start()
        peers[name] = Peer(school, listener, IPS[name])
    yield peers
    for peer in peers.values():
        await peer.listener.stop()
        await peer.school.close()
    await dns.stop()


def _tls(peer: Peer) -> ssl.SSLContext:
    s = peer.school.settings
    return ssl.create_default_context(cafile=str(s.path(s.tls.certificate)))


def peer_tls(peer: Peer) -> ssl.SSLContext:
    """A client context that trusts ``peer``'s certificate (for raw requests)."""
    s = peer.school.settings
    return ssl.create_default_context(cafile=str(s.path(s.tls.certificate)))


@dataclass
class ChatSchool:
    """A school with its client API (``MatrixServer``) and federation listener
    sharing one room service, as ``schulhof serve`` wires them."""

    school: School
    matrix: MatrixServer
    listener: FederationListener
    ip: str

    @property
    def name(self) -> str:
        return self.school.settings.school.domain

    @property
    def base_url(self) -> str:
        return self.matrix.base_url

    def user(self, login: str) -> str:
        return f"@{login}:{self.name}"

    async def start(self) -> None:
        await self.matrix.start()
        await self.listener.start()

    async def stop(self) -> None:
        await self.listener.stop()
        await self.matrix.stop()

    async def restart(self) -> None:
        """A new process on the same database and ports (what ``serve`` does)."""
        await self.stop()
        services = build_matrix(self.school)
        self.matrix = next(s for s in services if isinstance(s, MatrixServer))
        self.listener = next(s for s in services if isinstance(s, FederationListener))
        await self.start()


CHAT_PASSWORD = "Geheim-Passwort-1"


@pytest.fixture
async def chat_schools(tmp_path: Path, fresh_database_url: Callable[[], str]
                       ) -> AsyncIterator[dict[str, ChatSchool]]:
    """Schools a, b, c with pupils ``anna`` (a), ``ben`` (b), ``cem`` (c) and a
    teacher each; a and b are partners, c is a partner of b only."""
    dns = DnsServer()
    await dns.start()
    settings = {}
    for name, ip in IPS.items():
        url = await asyncio.to_thread(fresh_database_url)
        settings[name] = make_settings(tmp_path / name, url, domain=f"{name}.test", bind=ip,
                                       partners=PARTNERS[name])
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(b"".join(s.path(s.tls.certificate).read_bytes()
                                for s in settings.values()))
    schools: dict[str, ChatSchool] = {}
    pupils = {"a": "anna", "b": "ben", "c": "cem"}
    for name, s in settings.items():
        s = dataclasses.replace(
            s, federation=FederationSettings(dns_nameservers=(dns.host,), dns_port=dns.port,
                                             dns_cache=False, tls_ca_file=str(bundle)),
            matrix=dataclasses.replace(s.matrix, group_sync_interval_seconds=3600.0))
        dns.add(f"_matrix-fed._tcp.{name}.test", "SRV",
                f"10 5 {s.listen.federation} matrix.{name}.test.")
        dns.add(f"matrix.{name}.test", "A", IPS[name])
        school = await School.open(s, migrate=False)
        await school.directory.create_account(role=Role.TEACHER, login=f"lehrer{name}",
                                              password=CHAT_PASSWORD,
                                              display_name=f"Lehrer {name.upper()}")
        await school.directory.create_account(role=Role.PUPIL, login=pupils[name],
                                              password=CHAT_PASSWORD,
                                              display_name=pupils[name].title())
        services = build_matrix(school)
        chat = ChatSchool(school, next(x for x in services if isinstance(x, MatrixServer)),
                          next(x for x in services if isinstance(x, FederationListener)),
                          IPS[name])
        await chat.start()
        schools[name] = chat
    yield schools
    for chat in schools.values():
        await chat.stop()
        await chat.school.close()
    await dns.stop()
