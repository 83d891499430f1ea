"""The store as a delivery target: one transaction per commit, quota, queue, purge, GC."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib

import pytest
from sqlalchemy import event, func, select

from conf.app import School
from directory.db import Database
from directory.model import Role, Status
from mailserver.changes import ChangeFeed
from mailserver.delivery import Envelope, LocalRecipient, RecipientOutcome
from mailserver.schema import MailboxRow, MessageBlobRow, MessageRow, OutboundRow
from mailserver.store import AccountNotFound, MailStore, QuotaExceeded, StoreError
from tests.mailserver.store.conftest import PUPIL_QUOTA, QUOTAS, make_account

MAIL = b"From: a@example.org\r\nSubject: Klassenfahrt\r\n\r\n" + b"x" * 1000 + b"\r\n"


def envelope() -> Envelope:
    return Envelope("teacher@school.example", dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC))


async def count(db: Database, row: type) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(row)))


async def deliver(store: MailStore, *account_ids: int, message: bytes = MAIL,
                  remote: tuple[str, ...] = ()) -> object:
    tx = store.begin(envelope())
    for account_id in account_ids:
        assert await tx.add_local(LocalRecipient(account_id), len(message)) \
            is RecipientOutcome.ACCEPTED
    for address in remote:
        tx.add_remote(address)
    return await tx.commit(message)


async def test_class_mail_is_stored_once_and_delivered_to_each(
        store: MailStore, db: Database) -> None:
    pupils = [await make_account(db) for _ in range(5)]
    receipt = await deliver(store, *pupils)
    assert sorted(a for a, _, _ in receipt.stored) == sorted(pupils)
    assert all(uid == 1 for _, _, uid in receipt.stored)
    assert await count(db, MessageBlobRow) == 1
    assert await count(db, MessageRow) == 5
    for pupil in pupils:
        [message] = await store.read_mailbox(pupil, "INBOX")
        assert message.body == MAIL and message.uid == 1 and message.flags == frozenset()
        assert (await store.quota(pupil)).used == len(MAIL)
    # the next mail gets the next UID in every INBOX
    receipt = await deliver(store, *pupils, message=MAIL + b"2")
    assert all(uid == 2 for _, _, uid in receipt.stored)
    assert await count(db, MessageBlobRow) == 2


async def test_over_quota_recipient_is_refused_and_others_stored(
        store: MailStore, db: Database) -> None:
    full, fine, unlimited = await make_account(db), await make_account(db), \
        await make_account(db, "teacher")
    await store.append(full, "INBOX", b"y" * (PUPIL_QUOTA - 500))
    tx = store.begin(envelope())
    assert await tx.add_local(LocalRecipient(full), len(MAIL)) \
        is RecipientOutcome.OVER_QUOTA_TEMPORARY
    assert await tx.add_local(LocalRecipient(fine), len(MAIL)) is RecipientOutcome.ACCEPTED
    assert await tx.add_local(LocalRecipient(unlimited), PUPIL_QUOTA * 10) \
        is RecipientOutcome.ACCEPTED
    assert await tx.add_local(LocalRecipient(fine, "Archive"), PUPIL_QUOTA + 1) \
        is RecipientOutcome.OVER_QUOTA_PERMANENT
    receipt = await tx.commit(MAIL)
    assert {a for a, _, _ in receipt.stored} == {fine, unlimited}
    assert len(await store.read_mailbox(full)) == 1  # only the earlier append
    assert (await store.quota(full)).used == PUPIL_QUOTA - 500
    assert await store.read_mailbox(fine, "Archive") == []


async def test_quota_is_checked_again_with_the_real_size_at_commit(
        store: MailStore, db: Database) -> None:
    """Without SIZE the hint is 0; the commit must still not overfill a mailbox."""
    nearly_full, other = await make_account(db), await make_account(db)
    await store.append(nearly_full, "INBOX", b"y" * (PUPIL_QUOTA - 100))
    tx = store.begin(envelope())
    assert await tx.add_local(LocalRecipient(nearly_full)) is RecipientOutcome.ACCEPTED
    with pytest.raises(QuotaExceeded) as error:
        await tx.commit(MAIL)
    assert not error.value.permanent
    tx = store.begin(envelope())
    await tx.add_local(LocalRecipient(other))
    with pytest.raises(QuotaExceeded) as error:
        await tx.commit(b"z" * (PUPIL_QUOTA + 1))
    assert error.value.permanent
    # several recipients: the one without room is left out, the others stored
    tx = store.begin(envelope())
    await tx.add_local(LocalRecipient(nearly_full))
    await tx.add_local(LocalRecipient(other))
    receipt = await tx.commit(MAIL)
    assert [a for a, _, _ in receipt.stored] == [other]
    assert (await store.quota(nearly_full)).used == PUPIL_QUOTA - 100


async def test_abort_stores_nothing(store: MailStore, db: Database) -> None:
    pupil = await make_account(db)
    tx = store.begin(envelope())
    await tx.add_local(LocalRecipient(pupil), len(MAIL))
    tx.add_remote("someone@elsewhere.example")
    await tx.abort()
    with pytest.raises(StoreError):
        await tx.commit(MAIL)
    assert await count(db, MessageBlobRow) == 0
    assert await count(db, MessageRow) == 0
    assert await count(db, OutboundRow) == 0


async def test_remote_recipients_are_queued_in_the_same_commit(
        store: MailStore, db: Database) -> None:
    pupil = await make_account(db)
    receipt = await deliver(store, pupil, remote=("a@partner.example", "b@partner.example",
                                                  "a@partner.example"))
    assert len(receipt.queued_ids) == 2 and len(receipt.stored) == 1
    async with db.read() as session:
        rows = (await session.execute(select(OutboundRow.id, OutboundRow.recipient,
                                             OutboundRow.blob_id, OutboundRow.state,
                                             OutboundRow.mail_from))).all()
    assert sorted(r.id for r in rows) == sorted(receipt.queued_ids)
    assert sorted(r.recipient for r in rows) == ["a@partner.example", "b@partner.example"]
    assert {r.blob_id for r in rows} == {hashlib.sha256(MAIL).hexdigest()}
    assert {(r.state, r.mail_from) for r in rows} == {("queued", "teacher@school.example")}
    assert await store.read_blob(rows[0].blob_id) == MAIL
    # remote only: nothing local, the body is still stored for the queue
    receipt = await deliver(store, remote=("c@partner.example",), message=b"only remote")
    assert receipt.stored == () and len(receipt.queued_ids) == 1


async def test_exception_during_commit_leaves_no_partial_rows(
        store: MailStore, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    pupil = await make_account(db)

    def broken_clock() -> dt.datetime:  # runs after blob and message rows were written
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("mailserver.store.messages.now", broken_clock)
    with pytest.raises(RuntimeError):
        await deliver(store, pupil, remote=("x@partner.example",))
    assert await count(db, MessageBlobRow) == 0
    assert await count(db, MessageRow) == 0
    assert await count(db, OutboundRow) == 0
    assert (await store.quota(pupil)).used == 0
    monkeypatch.undo()
    receipt = await deliver(store, pupil, remote=("x@partner.example",))
    assert receipt.stored[0][2] == 1  # the failed attempt used no UID


async def test_a_failing_delivery_does_not_fail_its_group_commit_neighbours(
        store: MailStore, db: Database) -> None:
    doomed, fine = await make_account(db), await make_account(db)
    doomed_tx = store.begin(envelope())
    await doomed_tx.add_local(LocalRecipient(doomed))
    async with db.write() as session:  # the account goes away between RCPT and DATA
        from directory.schema import AccountRow
        await session.execute(AccountRow.__table__.delete().where(AccountRow.id == doomed))
    others = []
    for i in range(5):
        tx = store.begin(envelope())
        await tx.add_local(LocalRecipient(fine))
        others.append(tx.commit(MAIL + bytes([i])))
    results = await asyncio.gather(doomed_tx.commit(MAIL), *others, return_exceptions=True)
    assert isinstance(results[0], AccountNotFound)
    assert sorted(r.stored[0][2] for r in results[1:]) == [1, 2, 3, 4, 5]
    assert [m.uid for m in await store.read_mailbox(fine)] == [1, 2, 3, 4, 5]


async def test_concurrent_deliveries_are_group_committed(
        store: MailStore, db: Database) -> None:
    pupil = await make_account(db, "teacher")
    await store.ensure_default_mailboxes(pupil)
    before = store.batcher.transactions
    receipts = await asyncio.gather(*(deliver(store, pupil, message=MAIL + b"%d" % i)
                                      for i in range(30)))
    assert sorted(r.stored[0][2] for r in receipts) == list(range(1, 31))
    assert store.batcher.transactions - before < 30
    bodies = {m.body for m in await store.read_mailbox(pupil)}
    assert bodies == {MAIL + b"%d" % i for i in range(30)}


async def test_same_mailbox_twice_is_delivered_once(store: MailStore, db: Database) -> None:
    pupil = await make_account(db)
    tx = store.begin(envelope())
    await tx.add_local(LocalRecipient(pupil))
    await tx.add_local(LocalRecipient(pupil, "inbox"))  # an alias of the same person
    await tx.add_local(LocalRecipient(pupil, "Gone", frozenset({"\\Flagged"})))
    receipt = await tx.commit(MAIL)
    assert len(receipt.stored) == 2
    messages = await store.read_mailbox(pupil)  # a missing folder falls back to INBOX
    assert [(m.uid, m.flags) for m in messages] == [(1, frozenset()),
                                                    (2, frozenset({"\\Flagged"}))]


async def test_purged_accounts_lose_their_mail_and_gc_drops_orphan_blobs(
        school: School) -> None:
    d = school.directory
    store = MailStore(school.db, QUOTAS, ChangeFeed())
    leaving = await d.create_account(role=Role.PUPIL, login="leaving")
    staying = await d.create_account(role=Role.PUPIL, login="staying")
    deleted = await d.create_account(role=Role.PUPIL, login="deleted")
    shared = MAIL
    await deliver(store, leaving.id, staying.id, deleted.id, message=shared)
    await deliver(store, leaving.id, message=b"only for the leaver")
    await deliver(store, deleted.id, message=b"only for the deleted one")
    await deliver(store, deleted.id, message=b"queued too", remote=("x@partner.example",))
    assert await count(school.db, MessageBlobRow) == 4

    await d.delete_account("deleted")
    await d.set_status("leaving", Status.LEAVER, dt.date(2026, 7, 31))
    assert await d.purge_leavers(dt.date(2026, 8, 1)) == ["leaving"]

    async with school.db.read() as session:
        owners = set((await session.scalars(select(MailboxRow.account_id))).all())
    assert owners == {staying.id}
    assert await count(school.db, MessageRow) == 1
    assert await store.collect_garbage() == 2  # the queued body stays for the queue
    assert await count(school.db, MessageBlobRow) == 2
    assert [m.body for m in await store.read_mailbox(staying.id)] == [shared]
    assert await store.collect_garbage() == 0


async def test_rcpt_quota_answer_follows_committed_deliveries(
        store: MailStore, db: Database) -> None:
    """The RCPT-time check is cached briefly; deliveries keep the cache exact."""
    pupil = await make_account(db)
    big = b"b" * 6_000
    await deliver(store, pupil, message=big)
    tx = store.begin(envelope())
    assert await tx.add_local(LocalRecipient(pupil), len(big)) \
        is RecipientOutcome.OVER_QUOTA_TEMPORARY
    inbox = (await store.select_snapshot(pupil, "INBOX")).mailbox
    from mailserver.store import FlagMode

    await store.store_flags(inbox.id, [1], FlagMode.ADD, ["\\Deleted"])
    await store.expunge(inbox.id)
    tx = store.begin(envelope())
    assert await tx.add_local(LocalRecipient(pupil), len(big)) is RecipientOutcome.ACCEPTED


async def test_add_locals_judges_like_add_local_with_one_quota_query(
        store: MailStore, db: Database) -> None:
    """A class mail's RCPT: every member's quota in one read, same outcomes as one by one."""
    pupils = [await make_account(db) for _ in range(6)]
    teacher = await make_account(db, "teacher")
    await store.append(pupils[1], "INBOX", b"y" * (PUPIL_QUOTA - 500))
    recipients = [LocalRecipient(a) for a in [*pupils, teacher, pupils[0]]]
    size = len(MAIL)

    one_by_one = store.begin(envelope())
    expected = [await one_by_one.add_local(r, size) for r in recipients]
    assert expected.count(RecipientOutcome.OVER_QUOTA_TEMPORARY) == 1

    quota_reads: list[str] = []

    def count_quota_reads(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "used_bytes" in statement:
            quota_reads.append(statement)

    store._rcpt_quota.clear()  # a cold cache: the first RCPT after the TTL
    event.listen(db.read_engine.sync_engine, "before_cursor_execute", count_quota_reads)
    try:
        batched = store.begin(envelope())
        assert await batched.add_locals(recipients, size) == expected
    finally:
        event.remove(db.read_engine.sync_engine, "before_cursor_execute", count_quota_reads)
    assert len(quota_reads) == 1
    receipt = await batched.commit(MAIL)
    assert sorted({a for a, _, _ in receipt.stored}) == sorted(
        {*pupils, teacher} - {pupils[1]})


def _record_quota_reads(store: MailStore) -> list[list[int]]:
    """The account ids of each quota read the store makes from now on."""
    reads: list[list[int]] = []
    real_read = store._read_quotas

    async def counting_read(account_ids: list[int]) -> dict:
        reads.append(sorted(account_ids))
        return await real_read(account_ids)

    store._read_quotas = counting_read  # type: ignore[method-assign]
    return reads


async def test_concurrent_rcpt_quota_reads_are_shared(store: MailStore, db: Database) -> None:
    pupils = [await make_account(db) for _ in range(3)]
    reads = _record_quota_reads(store)
    outcomes = await asyncio.gather(*(
        store.begin(envelope()).add_locals([LocalRecipient(a) for a in pupils], len(MAIL))
        for _ in range(5)))
    assert all(o == [RecipientOutcome.ACCEPTED] * 3 for o in outcomes)
    assert reads == [sorted(pupils)]
    tx = store.begin(envelope())
    with pytest.raises(AccountNotFound):
        await tx.add_local(LocalRecipient(max(pupils) + 1000), len(MAIL))


async def test_deliveries_started_together_read_their_quotas_in_one_query(
        store: MailStore, db: Database) -> None:
    """A digest run's chunk: each delivery has its own recipient, one read for all."""
    pupils = [await make_account(db) for _ in range(8)]
    reads = _record_quota_reads(store)
    outcomes = await asyncio.gather(*(
        store.begin(envelope()).add_local(LocalRecipient(a), len(MAIL)) for a in pupils))
    assert outcomes == [RecipientOutcome.ACCEPTED] * len(pupils)
    assert reads == [sorted(pupils)]
    with pytest.raises(AccountNotFound):  # one unknown account fails only its own RCPT
        await asyncio.gather(store.begin(envelope()).add_local(LocalRecipient(max(pupils) + 99)))


async def test_first_deliveries_of_a_batch_make_every_default_folder(
        store: MailStore, db: Database) -> None:
    """New accounts of one group commit get their folders together, each its own
    UIDVALIDITY values; an account that had folders keeps them."""
    old = await make_account(db)
    await store.ensure_default_mailboxes(old)
    before = {i.name: i.uidvalidity for i in await store.mailbox_infos(old)}
    fresh = [await make_account(db) for _ in range(12)]
    receipts = await asyncio.gather(*(deliver(store, a, message=MAIL + b"%d" % a)
                                      for a in [old, *fresh]))
    assert [r.stored[0][0] for r in receipts] == [old, *fresh]
    assert {i.name: i.uidvalidity for i in await store.mailbox_infos(old)} == before
    for account_id in fresh:
        infos = await store.mailbox_infos(account_id)
        assert sorted(i.name for i in infos) == sorted(
            ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"])
        assert len({i.uidvalidity for i in infos}) == 6
        [message] = await store.read_mailbox(account_id)
        assert message.body == MAIL + b"%d" % account_id and message.uid == 1
    assert await store.ensure_default_mailboxes(fresh[0]) is False
