"""The worker reads and signs the next message while the current one is on the wire."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from typing import Any

from federation.resolver import Resolver
from mailserver.outbound.queue import OutboundQueue, QueueEntry
from mailserver.outbound.worker import OutboundWorker
from tests.mailserver.outbound.conftest import Outbound
from tests.support.dns_server import DnsServer


class RecordingSigner:
    """Notes how many messages the remote had when each signature was started."""

    def __init__(self, outbound: Outbound) -> None:
        self._outbound = outbound
        self.started: list[tuple[str, int]] = []

    async def sign(self, message: bytes) -> bytes:
        subject = message.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode()
        self.started.append((subject, len(self._outbound.sink.messages)))
        await asyncio.sleep(0)
        return b"X-Signed: yes\r\n" + message


def mail(subject: str) -> bytes:
    return (f"From: paul@a.test\r\nTo: anna@b.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@a.test>\r\n\r\nText\r\n").encode()


async def test_next_message_is_signed_while_the_current_one_is_sent(
        outbound: Outbound, dns_server: DnsServer) -> None:
    signer = RecordingSigner(outbound)
    worker = OutboundWorker(outbound.worker.config, outbound.queue, outbound.client,
                            Resolver([dns_server.host], dns_server.port, timeout=2,
                                     lifetime=4),
                            signer, outbound.bounces, clock=outbound.clock)
    outbound.sink.handler.rcpt_delay = 0.2  # each message stays on the wire a while
    for subject in ("m0", "m1", "m2"):
        await outbound.submit("paul@a.test", ["anna@b.test"], mail(subject))
    assert await worker.process_due() == 3

    # One connection, in order; m1 was signed before m0 had arrived, m2 before m1.
    assert outbound.sink.connections == 1
    assert [m.data.split(b"Subject: ")[1][:2] for m in outbound.sink.messages] == [
        b"m0", b"m1", b"m2"]
    assert signer.started == [("m0", 0), ("m1", 0), ("m2", 1)]
    assert all(m.data.startswith(b"X-Signed: yes\r\n") for m in outbound.sink.messages)
    assert set((await outbound.states()).values()) == {"sent"}


class CountingQueue(OutboundQueue):
    """The real queue, counting how bodies are read."""

    def __init__(self, queue: OutboundQueue) -> None:
        super().__init__(queue.db)
        self.one_by_one = 0
        self.together: list[int] = []

    async def body(self, blob_id: str) -> bytes:
        self.one_by_one += 1
        return await super().body(blob_id)

    async def claim_with_bodies(self, now: dt.datetime, lease: dt.timedelta, limit: int,
                                max_body_size: int,
                                ) -> tuple[list[QueueEntry], dict[str, bytes]]:
        entries, found = await super().claim_with_bodies(now, lease, limit, max_body_size)
        if entries:
            self.together.append(len(found))
        return entries, found


async def test_a_claims_small_bodies_are_read_together(
        outbound: Outbound, dns_server: DnsServer) -> None:
    queue = CountingQueue(outbound.queue)
    config = dataclasses.replace(outbound.worker.config, prefetch_body_bytes=1000)
    worker = OutboundWorker(config, queue, outbound.client,
                            Resolver([dns_server.host], dns_server.port, timeout=2,
                                     lifetime=4),
                            None, outbound.bounces, clock=outbound.clock)
    big = mail("big").replace(b"Text\r\n", (b"x" * 70 + b"\r\n") * 30)
    for message in (mail("m0"), mail("m1"), big, mail("m2")):
        await outbound.submit("paul@a.test", ["anna@b.test"], message)
    assert await worker.process_due() == 4

    # The three small bodies came with the claim; the big one on its own when its turn came.
    assert queue.together == [3]
    assert queue.one_by_one == 1
    subjects = sorted(m.data.split(b"Subject: ")[1].split(b"\r\n")[0]
                      for m in outbound.sink.messages)
    assert subjects == [b"big", b"m0", b"m1", b"m2"]
    assert any(m.data.endswith((b"x" * 70 + b"\r\n") * 30) for m in outbound.sink.messages)
    assert set((await outbound.states()).values()) == {"sent"}


async def test_connection_lost_with_a_transaction_opened_ahead_loses_nothing(
        outbound: Outbound) -> None:
    """With PIPELINING the next message is taken from the line and its transaction
    opened behind the current one; the connection dies during the current one's
    DATA: both go back to the line, a new connection delivers each once."""
    handler = outbound.sink.handler
    handler.pipelining = True
    record = handler.handle_DATA
    aborted: list[bytes] = []

    async def handle_data(server: Any, session: Any, envelope: Any) -> str:
        subject = envelope.original_content.split(b"Subject: ")[1][:2]
        if subject == b"m1" and not aborted:
            aborted.append(subject)
            server.transport.abort()  # m1's 250 never reaches the worker
        return await record(server, session, envelope)

    handler.handle_DATA = handle_data  # type: ignore[method-assign]
    for subject in ("m0", "m1", "m2"):
        await outbound.submit("paul@a.test", ["anna@b.test"], mail(subject))
    assert await outbound.worker.process_due() == 3

    assert aborted == [b"m1"]
    assert outbound.sink.connections == 2
    assert sorted(m.data.split(b"Subject: ")[1][:2] for m in outbound.sink.messages) == [
        b"m0", b"m1", b"m2"]
    assert set((await outbound.states()).values()) == {"sent"}
