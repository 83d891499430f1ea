"""Fixtures for outbound tests: a loopback DNS server, a store, a worker wired to both."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from directory.db import Database
from federation.keys import SchoolKeyPaths, generate_school_keys, load_dkim_keys
from federation.resolver import Resolver
from federation.smtp_out import ClientConfig, OutboundClient
from mailserver.changes import ChangeFeed
from mailserver.delivery import Envelope
from mailserver.outbound.bounces import InboxBounces
from mailserver.outbound.queue import OutboundQueue
from mailserver.outbound.schedule import RetrySchedule
from mailserver.outbound.signing import MessageSigner
from mailserver.outbound.worker import OutboundWorker, WorkerConfig
from mailserver.store import MailStore
from tests.mailserver.outbound.sink import Sink
from tests.mailserver.store.conftest import make_account
from tests.support.dns_server import DnsServer

QUOTAS = {"pupil": 0, "teacher": 0, "parent": 0, "staff": 0, "admin": 0}


@pytest.fixture
async def dns_server() -> AsyncIterator[DnsServer]:
    server = DnsServer()
    await server.start()
    yield server
    await server.stop()


class Clock:
    """Real time plus an offset tests move forward (rows get real commit times)."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset

    @property
    def now(self) -> dt.datetime:
        return self()

    @now.setter
    def now(self, value: dt.datetime) -> None:
        self.offset = value - dt.datetime.now(dt.UTC)

    def advance(self, **kwargs: float) -> None:
        self.offset += dt.timedelta(**kwargs)


@dataclass
class CountingBounces:
    inner: InboxBounces
    calls: list[str] = field(default_factory=list)

    async def deliver(self, sender: str, message: bytes) -> bool:
        self.calls.append(sender)
        return await self.inner.deliver(sender, message)


@dataclass
class Outbound:
    db: Database
    store: MailStore
    queue: OutboundQueue
    worker: OutboundWorker
    client: OutboundClient
    clock: Clock
    bounces: CountingBounces
    accounts: dict[str, int]
    sink: Sink

    async def submit(self, sender: str, recipients: list[str], message: bytes) -> list[int]:
        tx = self.store.begin(Envelope(sender, self.clock()))
        for r in recipients:
            tx.add_remote(r)
        receipt = await tx.commit(message)
        return list(receipt.queued_ids)

    async def inbox(self, login: str) -> list[bytes]:
        try:
            return [m.body for m in await self.store.read_mailbox(self.accounts[login])]
        except Exception:
            return []

    async def states(self) -> dict[int, str]:
        return {e.id: e.state for e in await self.queue.entries(
            ("queued", "delivering", "sent", "bounced"))}


@pytest.fixture
async def outbound(db: Database, dns_server: DnsServer, tmp_path: Path) -> AsyncIterator[Outbound]:
    """Worker of school a.test; b.test's MX is a plaintext sink on 127.0.0.1."""
    sink = await Sink(hostname="mx1.b.test").start()
    dns_server.add("b.test", "MX", "10 mx1.b.test.")
    dns_server.add("mx1.b.test", "A", "127.0.0.1")
    store = MailStore(db, QUOTAS, ChangeFeed(), group_commit=False)
    accounts = {"paul": await make_account(db, "pupil", "paul")}
    paths = SchoolKeyPaths.in_dir(tmp_path / "keys")
    generate_school_keys(paths)
    signer = MessageSigner(load_dkim_keys(paths), ["a.test"], "a.test")

    async def find_account(address: str) -> int | None:
        local, _, domain = address.partition("@")
        return accounts.get(local) if domain == "a.test" else None

    clock = Clock()
    bounces = CountingBounces(InboxBounces(store, find_account))
    client = OutboundClient(ClientConfig(helo_name="mail.a.test", port=sink.port, timeout=5))
    config = WorkerConfig(hostname="mail.a.test", postmaster="MAILER-DAEMON@a.test",
                          schedule=RetrySchedule.from_settings(60, 48, 4),
                          per_domain_connections=1)
    queue = OutboundQueue(db)
    worker = OutboundWorker(config, queue, client,
                            Resolver([dns_server.host], dns_server.port, timeout=2,
                                     lifetime=4),
                            signer, bounces, clock=clock)
    yield Outbound(db, store, queue, worker, client, clock, bounces, accounts, sink)
    await worker.stop()
    await sink.stop()
