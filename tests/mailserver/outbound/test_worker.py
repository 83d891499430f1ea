"""The queue worker against a loopback DNS server and aiosmtpd sinks, on the real store."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
from pathlib import Path

import pytest

from mailserver.outbound.queue import OutboundQueue
from mailserver.outbound.schedule import RetrySchedule
from tests.mailserver.outbound.conftest import Outbound
from tests.mailserver.outbound.sink import Sink
from tests.support.dns_server import DnsServer


def mail(subject: str = "Hallo", sender: str = "paul@a.test") -> bytes:
    return (f"From: Paul <{sender}>\r\nTo: someone@b.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@a.test>\r\n\r\nText\r\n").encode()


def dsn_blocks(data: bytes) -> tuple[email.message.Message, list[email.message.Message]]:
    message = email.message_from_bytes(data, policy=email.policy.compat32)
    assert message.get_content_type() == "multipart/report"
    return message, message.get_payload()[1].get_payload()


async def test_groups_by_domain_signs_once_and_reuses_one_connection(
        outbound: Outbound, dns_server: DnsServer) -> None:
    other = await Sink("127.0.0.6", port=outbound.sink.port, hostname="mx.c.test").start()
    dns_server.add("c.test", "MX", "10 mx.c.test.")
    dns_server.add("mx.c.test", "A", "127.0.0.6")
    try:
        for i in range(3):
            await outbound.submit("paul@a.test", [f"anna{i}@b.test", f"ben{i}@b.test"],
                                  mail(f"m{i}"))
        await outbound.submit("paul@a.test", ["carla@c.test", "dora@b.test"], mail("both"))
        assert await outbound.worker.process_due() == 8
    finally:
        await other.stop()
    b, c = outbound.sink, other
    assert b.connections == 1 and c.connections == 1
    assert sorted(tuple(m.recipients) for m in b.messages) == [
        ("anna0@b.test", "ben0@b.test"), ("anna1@b.test", "ben1@b.test"),
        ("anna2@b.test", "ben2@b.test"), ("dora@b.test",)]
    assert [m.recipients for m in c.messages] == [["carla@c.test"]]
    to_b = next(m.data for m in b.messages if m.recipients == ["dora@b.test"])
    assert to_b == c.messages[0].data  # signed once, the same bytes to both domains
    assert to_b.count(b"DKIM-Signature:") == 2  # RSA and Ed25519
    assert b"d=a.test" in to_b
    assert set((await outbound.states()).values()) == {"sent"}


async def test_permanent_failure_bounces_at_once_into_sender_inbox(outbound: Outbound) -> None:
    outbound.sink.handler.rcpt_replies["gone@b.test"] = "550 5.1.1 <gone@b.test>: unknown"
    ids = await outbound.submit("paul@a.test", ["anna@b.test", "gone@b.test"], mail("x"))
    await outbound.worker.process_due()
    assert await outbound.states() == {ids[0]: "sent", ids[1]: "bounced"}
    [dsn] = await outbound.inbox("paul")
    message, blocks = dsn_blocks(dsn)
    assert message["To"] == "<paul@a.test>"
    assert [b["Final-Recipient"] for b in blocks[1:]] == ["rfc822; gone@b.test"]
    assert blocks[1]["Status"] == "5.1.1"
    assert blocks[1]["Remote-MTA"] == "dns; mx1.b.test"
    assert "550 5.1.1" in blocks[1]["Diagnostic-Code"]
    assert "Message-ID: <x@a.test>" in message.get_payload()[2].get_payload()


async def test_temporary_failure_backs_off_warns_once_then_gives_up(
        outbound: Outbound) -> None:
    outbound.sink.handler.rcpt_replies["busy@b.test"] = "451 4.3.0 try later"
    [row] = await outbound.submit("paul@a.test", ["busy@b.test"], mail("slow"))
    queue, clock, worker = outbound.queue, outbound.clock, outbound.worker
    schedule: RetrySchedule = worker.config.schedule
    # The worker reads the clock once per attempt, somewhere inside process_due;
    # a clock read here after it returns runs later, by a second or more under
    # load (it read 59 s for the first wait once).  So each wait is known to lie
    # between next attempt - (clock after) and next attempt - (clock before).
    for expected in (60, 120, 240, 480):
        before = clock()
        await worker.process_due()
        after = clock()
        entry = await queue.get(row)
        assert entry is not None and entry.state == "queued"
        assert entry.last_error == "451 4.3.0 try later"
        wait = dt.timedelta(seconds=expected)
        assert after - before < wait  # else the bounds below prove nothing
        assert before + wait <= entry.next_attempt_at <= after + wait, (
            expected, entry.next_attempt_at - before, entry.next_attempt_at - after)
        assert await worker.process_due() == 0  # not due yet
        clock.now = entry.next_attempt_at
    assert await outbound.inbox("paul") == []  # no warning before 4 hours

    clock.now = (await queue.get(row)).created_at + schedule.warn_after
    await worker.process_due()
    [warning] = await outbound.inbox("paul")
    _, blocks = dsn_blocks(warning)
    assert blocks[1]["Action"] == "delayed" and blocks[1]["Status"] == "4.3.0"
    assert (await queue.get(row)).delay_warned_at is not None
    clock.now = (await queue.get(row)).next_attempt_at
    await worker.process_due()
    assert len(await outbound.inbox("paul")) == 1  # warned once only

    clock.now = (await queue.get(row)).created_at + schedule.give_up_after
    await worker.process_due()
    assert (await outbound.states())[row] == "bounced"
    inbox = await outbound.inbox("paul")
    assert len(inbox) == 2
    _, blocks = dsn_blocks(inbox[1])
    assert blocks[1]["Action"] == "failed" and blocks[1]["Status"] == "5.4.7"
    assert "451 4.3.0 try later" in blocks[1]["Diagnostic-Code"]
    assert outbound.sink.messages == []


async def test_null_sender_is_never_bounced(outbound: Outbound) -> None:
    outbound.sink.handler.rcpt_replies["gone@b.test"] = "550 5.1.1 unknown"
    [row] = await outbound.submit("", ["gone@b.test"], mail("dsn"))
    await outbound.worker.process_due()
    assert (await outbound.states())[row] == "bounced"
    assert outbound.bounces.calls == []
    assert await outbound.inbox("paul") == []


async def test_null_sender_giving_up_is_not_bounced_nor_warned(outbound: Outbound) -> None:
    outbound.sink.handler.rcpt_replies["busy@b.test"] = "451 4.3.0 later"
    [row] = await outbound.submit("", ["busy@b.test"], mail("dsn2"))
    await outbound.worker.process_due()
    outbound.clock.advance(hours=49)
    await outbound.worker.process_due()
    assert (await outbound.states())[row] == "bounced"
    assert outbound.bounces.calls == []


def _states_when_notified(outbound: Outbound, row: int) -> list[tuple[str, bool]]:
    """(state, delay warned?) of ``row`` at the moment each DSN is handed over."""
    seen: list[tuple[str, bool]] = []
    deliver = outbound.bounces.deliver

    async def noting(sender: str, message: bytes) -> bool:
        entry = await outbound.queue.get(row)
        assert entry is not None
        seen.append((entry.state, entry.delay_warned_at is not None))
        return await deliver(sender, message)

    outbound.bounces.deliver = noting  # type: ignore[method-assign]
    return seen


async def test_row_is_bounced_before_its_notice_goes_out(outbound: Outbound) -> None:
    """A crash between the two must not bounce and notify again after a restart."""
    outbound.sink.handler.rcpt_replies["gone@b.test"] = "550 5.1.1 unknown"
    [row] = await outbound.submit("paul@a.test", ["gone@b.test"], mail("order"))
    seen = _states_when_notified(outbound, row)
    await outbound.worker.process_due()
    assert seen == [("bounced", False)]
    assert len(await outbound.inbox("paul")) == 1


async def test_delay_is_recorded_before_its_warning_goes_out(outbound: Outbound) -> None:
    outbound.sink.handler.rcpt_replies["busy@b.test"] = "451 4.3.0 try later"
    [row] = await outbound.submit("paul@a.test", ["busy@b.test"], mail("warn-order"))
    seen = _states_when_notified(outbound, row)
    entry = await outbound.queue.get(row)
    assert entry is not None
    outbound.clock.now = entry.created_at + outbound.worker.config.schedule.warn_after
    await outbound.worker.process_due()
    assert seen == [("queued", True)]


async def test_null_mx_and_missing_domain_bounce_without_connecting(
        outbound: Outbound, dns_server: DnsServer) -> None:
    dns_server.add("nomail.test", "MX", "0 .")
    await outbound.submit("paul@a.test", ["x@nomail.test"], mail("n1"))
    await outbound.submit("paul@a.test", ["x@nowhere.test"], mail("n2"))
    await outbound.worker.process_due()
    assert set((await outbound.states()).values()) == {"bounced"}
    statuses = sorted(dsn_blocks(d)[1][1]["Status"] for d in await outbound.inbox("paul"))
    assert statuses == ["5.1.10", "5.1.2"]
    assert outbound.client.connections_opened == 0


async def test_unreachable_mx_moves_on_to_the_next(outbound: Outbound,
                                                   dns_server: DnsServer) -> None:
    dns_server.remove("b.test", "MX")
    dns_server.add("b.test", "MX", "5 dead.b.test.")
    dns_server.add("b.test", "MX", "20 mx1.b.test.")
    dns_server.add("dead.b.test", "A", "127.0.0.5")  # nothing listens there
    [row] = await outbound.submit("paul@a.test", ["anna@b.test"], mail("next"))
    await outbound.worker.process_due()
    assert (await outbound.states())[row] == "sent"
    assert len(outbound.sink.messages) == 1
    names = [q for q, t in dns_server.queries if t == "A"]
    assert names.index("dead.b.test.") < names.index("mx1.b.test.")


async def test_dns_and_connection_failures_are_retried(outbound: Outbound,
                                                       dns_server: DnsServer) -> None:
    dns_server.fail("flaky.test")
    [dns_row] = await outbound.submit("paul@a.test", ["x@flaky.test"], mail("d"))
    await outbound.sink.stop()
    [down_row] = await outbound.submit("paul@a.test", ["anna@b.test"], mail("e"))
    await outbound.worker.process_due()
    dns_entry, down_entry = await outbound.queue.get(dns_row), await outbound.queue.get(down_row)
    assert dns_entry.state == down_entry.state == "queued"
    assert dns_entry.last_error.startswith("451 4.4.3")
    assert down_entry.last_error.startswith("451 4.4.1")
    assert outbound.bounces.calls == []


async def test_concurrent_claims_never_share_a_row(outbound: Outbound) -> None:
    for i in range(20):
        await outbound.submit("paul@a.test", [f"r{i}@b.test"], mail(f"c{i}"))
    now = outbound.clock() + dt.timedelta(seconds=1)
    queues = [OutboundQueue(outbound.db) for _ in range(4)]
    claimed = await asyncio.gather(*(q.claim(now, dt.timedelta(minutes=5), 7) for q in queues))
    ids = [e.id for batch in claimed for e in batch]
    assert len(ids) == len(set(ids)) == 20
    assert all(e.state == "delivering" and e.attempts == 1 for b in claimed for e in b)
    # A lease that has not run out is not claimed again; one that has is.
    assert await queues[0].claim(now, dt.timedelta(minutes=5), 100) == []
    again = await queues[0].claim(now + dt.timedelta(minutes=6), dt.timedelta(minutes=5), 100)
    assert len(again) == 20 and {e.attempts for e in again} == {2}


async def test_rows_left_delivering_by_a_crash_are_delivered_once(outbound: Outbound) -> None:
    for i in range(3):
        await outbound.submit("paul@a.test", [f"r{i}@b.test"], mail(f"k{i}"))
    # A "previous process" claimed them and died before sending anything.
    await OutboundQueue(outbound.db).claim(outbound.clock(), dt.timedelta(hours=1), 100)
    assert await outbound.worker.process_due() == 0
    assert await outbound.worker.recover() == 3
    await outbound.worker.process_due()
    assert sorted(m.recipients[0] for m in outbound.sink.messages) == [
        "r0@b.test", "r1@b.test", "r2@b.test"]
    assert set((await outbound.states()).values()) == {"sent"}


async def test_run_loop_picks_up_new_rows_and_stops_cleanly(outbound: Outbound) -> None:
    task = asyncio.create_task(outbound.worker.run())
    try:
        await outbound.submit("paul@a.test", ["anna@b.test"], mail("loop"))
        outbound.worker.wake()
        for _ in range(100):
            if outbound.sink.messages:
                break
            await asyncio.sleep(0.05)
        assert len(outbound.sink.messages) == 1
    finally:
        await outbound.worker.stop()
        await asyncio.wait_for(task, 5)
    assert set((await outbound.states()).values()) == {"sent"}


@pytest.mark.parametrize("lanes", [1, 3])
async def test_per_domain_connection_limit(outbound: Outbound, lanes: int) -> None:
    import dataclasses

    outbound.worker.config = dataclasses.replace(outbound.worker.config,
                                                 per_domain_connections=lanes)
    outbound.sink.handler.data_delay = 0.05
    for i in range(9):
        await outbound.submit("paul@a.test", [f"r{i}@b.test"], mail(f"l{i}"))
    await outbound.worker.process_due()
    assert len(outbound.sink.messages) == 9
    assert outbound.sink.connections == lanes


async def test_return_path_stays_on_the_local_copy_and_never_leaves(
        outbound: Outbound, dns_server: DnsServer, tmp_path: Path) -> None:
    from federation.dkim import verify
    from federation.keys import SchoolKeyPaths, load_dkim_keys
    from federation.resolver import Resolver
    from mailserver.delivery import Envelope, LocalRecipient

    # As the SMTP layer stores it: our trace fields on top, one copy for everyone.
    stored = (b"Return-Path: <paul@a.test>\r\n"
              b"Received: from client.test ([127.0.0.1]) by mail.a.test; "
              b"Mon, 1 Jan 2024 00:00:00 +0000\r\n" + mail("trace"))
    tx = outbound.store.begin(Envelope("paul@a.test", outbound.clock()))
    await tx.add_local(LocalRecipient(outbound.accounts["paul"]), len(stored))
    tx.add_remote("anna@b.test")
    await tx.commit(stored)
    await outbound.worker.process_due()
    [local] = await outbound.inbox("paul")
    assert local.startswith(b"Return-Path: <paul@a.test>\r\n")
    [relayed] = outbound.sink.messages
    assert b"return-path" not in relayed.data.lower()
    assert b"Received: from client.test" in relayed.data
    assert relayed.data.startswith(b"DKIM-Signature:")
    # The signature was made over what left: it verifies at the receiver.
    for key in load_dkim_keys(SchoolKeyPaths.in_dir(tmp_path / "keys")):
        dns_server.add(f"{key.selector}._domainkey.a.test", "TXT", key.dns_txt)
    results = await verify(relayed.data, Resolver([dns_server.host], dns_server.port))
    assert [r.result for r in results] == ["pass", "pass"]


async def test_run_loop_looks_again_soon_while_mail_is_coming_in(outbound: Outbound) -> None:
    import dataclasses

    # A long idle poll: only the busy window can explain a quick second delivery.
    outbound.worker.config = dataclasses.replace(outbound.worker.config, poll_seconds=30.0)
    task = asyncio.create_task(outbound.worker.run())
    try:
        await outbound.submit("paul@a.test", ["anna@b.test"], mail("first"))
        outbound.worker.wake()
        for _ in range(100):
            if outbound.sink.messages:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        await outbound.submit("paul@a.test", ["ben@b.test"], mail("second"))  # no wake
        for _ in range(100):
            if len(outbound.sink.messages) == 2:
                break
            await asyncio.sleep(0.02)
        assert [m.recipients for m in outbound.sink.messages] == [["anna@b.test"],
                                                                  ["ben@b.test"]]
    finally:
        await outbound.worker.stop()
        await asyncio.wait_for(task, 5)


async def test_run_loop_keeps_the_connection_for_the_next_claims(outbound: Outbound) -> None:
    import dataclasses

    outbound.worker.config = dataclasses.replace(outbound.worker.config,
                                                 connection_idle_seconds=2.0)
    worker, sink = outbound.worker, outbound.sink

    async def delivered(count: int) -> None:
        for _ in range(500):
            if len(sink.messages) == count:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"{len(sink.messages)} of {count} delivered")

    task = asyncio.create_task(worker.run())
    try:
        for i, pause in enumerate((0.0, 0.3, 0.3)):
            await asyncio.sleep(pause)
            await outbound.submit("paul@a.test", [f"r{i}@b.test"], mail(f"keep{i}"))
            worker.wake()
            await delivered(i + 1)
        # Later claims used the connection the first one opened.
        assert sink.connections == 1
        # Idle longer than connection_idle_seconds: closed, the next mail opens another.
        await asyncio.sleep(2.5)
        await outbound.submit("paul@a.test", ["late@b.test"], mail("late"))
        worker.wake()
        await delivered(4)
        assert sink.connections == 2
    finally:
        await worker.stop()
        await asyncio.wait_for(task, 5)
    assert set((await outbound.states()).values()) == {"sent"}


async def test_mark_sent_touches_only_rows_in_delivery(outbound: Outbound) -> None:
    """A row an admin handed back (queued) meanwhile is not marked sent."""
    ids = await outbound.submit("paul@a.test", ["anna@b.test", "dora@b.test"], mail("ms"))
    claimed, bodies = await outbound.queue.claim_with_bodies(
        outbound.clock(), dt.timedelta(minutes=5), 1, 64 * 1024)
    assert [e.id for e in claimed] == ids[:1]
    assert list(bodies.values()) == [mail("ms")]
    assert await outbound.queue.mark_sent(ids) == 1
    assert await outbound.states() == {ids[0]: "sent", ids[1]: "queued"}
    assert await outbound.queue.mark_sent([]) == 0
