"""Matrix federation transactions between two schools over real TLS on loopback:
the outbox survives an outage of the destination and delivers everything once, in
order; a resent transaction is answered from the record; limits and origin are
enforced (Server-Server API, "Transactions").

Rooms across servers are not built yet, so school B's rooms side is a recorder
that keeps what arrives (the transport is real: A's queue and sender, B's
listener with X-Matrix checks and its transaction record)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import aiohttp
import pytest

from conf.wiring.matrix import federation_listener
from federation.matrix.client import FederationRequestError
from federation.matrix.outbox import Outbox
from federation.matrix.request_auth import authorization_header
from federation.matrix.sender import TransactionSender
from tests.e2e.matrix_federation.conftest import Peer, peer_tls


class Recorder:
    def __init__(self) -> None:
        self.pdus: list[Mapping[str, Any]] = []
        self.edus: list[Mapping[str, Any]] = []
        self.transactions = 0

    async def receive(self, origin: str, pdus: list[Mapping[str, Any]],
                      edus: list[Mapping[str, Any]], record: Any = None
                      ) -> dict[str, dict[str, Any]]:
        self.transactions += 1
        self.pdus += pdus
        self.edus += edus
        return {}


async def restart_with_recorder(peer: Peer) -> Recorder:
    await peer.listener.stop()
    recorder = Recorder()
    listener = federation_listener(peer.school)
    listener.context = dataclasses.replace(listener.context, transactions=recorder)
    await listener.start()
    peer.listener = listener
    return recorder


async def eventually(check: Any, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def pdu(n: int) -> dict[str, Any]:
    return {"room_id": "!r:a.test", "sender": "@lehrera:a.test", "type": "m.room.message",
            "content": {"body": f"Nachricht {n}"}, "depth": n, "origin_server_ts": n,
            "prev_events": [], "auth_events": []}


async def test_outage_then_catch_up_in_order_exactly_once(peers: dict[str, Peer]) -> None:
    a, b = peers["a"], peers["b"]
    await a.listener.sender.stop()
    await b.listener.stop()  # B is down
    outbox = Outbox(a.school.db)
    sender = TransactionSender(outbox, a.listener.client, first_backoff=0.2)
    sender.start()
    try:
        await outbox.enqueue(["b.test"], pdus=[pdu(n) for n in range(120)],
                             edus=[{"edu_type": "m.typing", "content": {"n": n}}
                                   for n in range(3)])
        sender.wake()

        async def failed_once() -> bool:
            return any(s.failures >= 1 for s in await outbox.status())
        await eventually(failed_once)
        [status] = await outbox.status()
        assert status.queued == 123 and status.last_success_at is None

        recorder = await restart_with_recorder(b)  # no wake: the backoff's end is enough

        async def drained() -> bool:
            return (await outbox.status())[0].queued == 0
        try:
            await eventually(drained)
        except AssertionError:
            raise AssertionError(str(await outbox.status())) from None
    finally:
        await sender.stop()
    assert [p["depth"] for p in recorder.pdus] == list(range(120))  # in order, once
    assert [e["content"]["n"] for e in recorder.edus] == [0, 1, 2]
    assert recorder.transactions >= 3  # at most 50 PDUs per transaction
    [status] = await outbox.status()
    assert status.failures == 0 and status.last_success_at is not None


async def test_resent_transaction_is_answered_from_the_record(peers: dict[str, Peer]) -> None:
    recorder = await restart_with_recorder(peers["b"])
    client = peers["a"].listener.client
    body = {"origin": "a.test", "origin_server_ts": 1, "pdus": [pdu(1)], "edus": []}
    first = await client.request("PUT", "b.test", "/_matrix/federation/v1/send/t1",
                                 content=body)
    again = await client.request("PUT", "b.test", "/_matrix/federation/v1/send/t1",
                                 content=body)
    assert first == again == {"pdus": {}}
    assert recorder.transactions == 1 and len(recorder.pdus) == 1


@pytest.mark.parametrize(("body", "errcode"), [
    ({"origin": "a.test", "pdus": [pdu(n) for n in range(51)]}, "M_BAD_JSON"),
    ({"origin": "a.test", "edus": [{"edu_type": "m.typing"}] * 101}, "M_BAD_JSON"),
    ({"origin": "a.test", "pdus": "nope"}, "M_BAD_JSON"),
    ({"origin": "c.test", "pdus": []}, "M_FORBIDDEN"),
])
async def test_oversized_or_foreign_transactions_are_refused(
        peers: dict[str, Peer], body: dict[str, Any], errcode: str) -> None:
    recorder = await restart_with_recorder(peers["b"])
    with pytest.raises(FederationRequestError) as refused:
        await peers["a"].listener.client.request(
            "PUT", "b.test", "/_matrix/federation/v1/send/bad", content=body)
    assert refused.value.errcode == errcode
    assert recorder.transactions == 0


async def test_unsigned_transaction_is_refused(peers: dict[str, Peer]) -> None:
    b = peers["b"]
    recorder = await restart_with_recorder(b)
    path = "/_matrix/federation/v1/send/x1"
    body = {"origin": "a.test", "pdus": [pdu(1)]}
    # Signed for another body than the one sent: the signature covers the content.
    header = authorization_header(peers["a"].key, "a.test", "b.test", "PUT", path,
                                  {"origin": "a.test", "pdus": []})
    async with aiohttp.ClientSession() as http, http.put(
            b.url(path), data=json.dumps(body), ssl=peer_tls(b), server_hostname=b.name,
            headers={"Authorization": header,
                     "Content-Type": "application/json"}) as response:
        assert response.status == 401
    assert recorder.transactions == 0


class GatedOutbox(Outbox):
    """An outbox whose next read of a destination's queue, once armed, waits after
    reading until released: the moment a sender's drain found the queue empty."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.armed = False
        self.reading = asyncio.Event()
        self.release = asyncio.Event()
        self.schedules = 0

    async def next_batch(self, destination: str, after: int | None = None) -> Any:
        batch = await super().next_batch(destination, after)
        if self.armed and batch is None:
            self.armed = False
            self.reading.set()
            await self.release.wait()
        return batch

    async def schedule(self, now: Any) -> Any:
        self.schedules += 1
        return await super().schedule(now)


async def test_item_queued_while_a_drain_ends_is_sent_at_once(peers: dict[str, Peer]) -> None:
    """Queued (and the sender woken) just as the destination's drain read its queue
    empty: the sender's pass skips the busy destination, so the drain must look
    again instead of leaving the item for the next poll, half a minute later."""
    a, b = peers["a"], peers["b"]
    await a.listener.sender.stop()
    recorder = await restart_with_recorder(b)
    outbox = GatedOutbox(a.school.db)
    sender = TransactionSender(outbox, a.listener.client)
    sender.start()
    try:
        outbox.armed = True
        await outbox.enqueue(["b.test"], pdus=[pdu(1)])
        sender.wake()
        await asyncio.wait_for(outbox.reading.wait(), 20)  # pdu 1 sent, queue read empty
        seen = outbox.schedules
        await outbox.enqueue(["b.test"], pdus=[pdu(2)])
        sender.wake()

        async def looked() -> bool:
            return outbox.schedules > seen
        await eventually(looked)
        await asyncio.sleep(0.1)  # the pass that found b.test busy is over
        outbox.release.set()

        async def both() -> bool:
            return len(recorder.pdus) == 2
        await eventually(both, timeout=5.0)
    finally:
        outbox.release.set()
        await sender.stop()
    assert [p["depth"] for p in recorder.pdus] == [1, 2]


async def test_a_wake_naming_its_destination_sends_without_a_schedule_read(
        peers: dict[str, Peer]) -> None:
    """Each event sent wakes the sender with its destinations: one known not to be
    backing off is sent to at once; one that is backing off still waits."""
    a, b = peers["a"], peers["b"]
    await a.listener.sender.stop()
    recorder = await restart_with_recorder(b)
    outbox = Outbox(a.school.db)
    reads = 0
    schedule = outbox.schedule

    async def counted(now: Any) -> Any:
        nonlocal reads
        reads += 1
        return await schedule(now)
    outbox.schedule = counted  # type: ignore[method-assign]
    await outbox.end_backoff("b.test")  # an earlier test of the module may have left one
    sender = TransactionSender(outbox, a.listener.client, first_backoff=60.0)
    sender.start()
    try:
        async def first_read() -> bool:
            return reads >= 1
        await eventually(first_read)
        before = reads
        await outbox.enqueue(["b.test"], pdus=[pdu(1)])
        sender.wake(["b.test"])

        async def arrived() -> bool:
            return pdu(1) in recorder.pdus
        await eventually(arrived)
        assert reads == before

        await b.listener.stop()
        await outbox.enqueue(["b.test"], pdus=[pdu(2)])
        sender.wake(["b.test"])

        async def failed_once() -> bool:
            return any(s.failures >= 1 for s in await outbox.status())
        await eventually(failed_once)
        await outbox.enqueue(["b.test"], pdus=[pdu(3)])
        sender.wake(["b.test"])
        await asyncio.sleep(0.5)
        [status] = await outbox.status()
        assert status.failures == 1 and status.queued == 2  # not tried again: backoff
    finally:
        await sender.stop()


class HeldDeliveries(Outbox):
    """An outbox whose first "delivered" commit waits until released."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    async def delivered(self, batch: Any, now: Any) -> None:
        if not self.held.is_set():
            self.held.set()
            await self.release.wait()
        await super().delivered(batch, now)


async def test_the_next_transaction_does_not_wait_for_the_last_ones_commit(
        peers: dict[str, Peer]) -> None:
    """Catch-up sends transaction after transaction: the queue's bookkeeping of one
    (the rows it delivered leave the queue) is done while the next one is on its way,
    not before it (one ahead at most: its answer waits for that commit), and nothing
    is sent twice or lost."""
    a, b = peers["a"], peers["b"]
    await a.listener.sender.stop()
    recorder = await restart_with_recorder(b)
    outbox = HeldDeliveries(a.school.db)
    await outbox.end_backoff("b.test")
    sender = TransactionSender(outbox, a.listener.client)
    sender.start()
    try:
        await outbox.enqueue(["b.test"], pdus=[pdu(n) for n in range(120)])
        sender.wake(["b.test"])
        await asyncio.wait_for(outbox.held.wait(), 20)

        async def second_sent() -> bool:
            return len(recorder.pdus) == 100
        await eventually(second_sent, timeout=10.0)  # the first commit is still held
        await asyncio.sleep(0.3)
        assert len(recorder.pdus) == 100  # the third waits for it
        assert (await outbox.status())[0].queued == 120
        outbox.release.set()

        async def drained() -> bool:
            return (await outbox.status())[0].queued == 0
        await eventually(drained)
    finally:
        outbox.release.set()
        await sender.stop()
    assert [p["depth"] for p in recorder.pdus] == list(range(120))  # in order, once
    assert recorder.transactions == 3
