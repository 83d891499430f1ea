"""The group commit of the store's own writes (mailserver.store.write_queue):
APPEND (RFC 9051 6.3.12, RFC 4315 APPENDUID), STORE (6.4.6, RFC 7162 3.1.3),
EXPUNGE (6.4.3) and \\Recent claims (RFC 3501 2.3.2) of many sessions in one
transaction, each answered after the shared commit, refusals failing alone."""

from __future__ import annotations

import asyncio
import datetime as dt

from directory.db import Database
from mailserver.store import MailStore
from mailserver.store.model import FlagMode, MailboxNotFound, QuotaExceeded
from tests.mailserver.store.conftest import PUPIL_QUOTA, make_account

MAIL = b"From: a@schule.test\r\nSubject: Test\r\n\r\nHallo\r\n"


async def test_mixed_writes_share_commits_and_refusals_fail_alone(
        store: MailStore, db: Database) -> None:
    teacher = await make_account(db, "teacher")
    pupil = await make_account(db, "pupil")
    for account in (teacher, pupil):
        await store.ensure_default_mailboxes(account)
    for i in range(4):
        await store.append(teacher, "INBOX", MAIL + b"%d" % i)
    inbox = (await store.mailbox_status(teacher, "INBOX")).mailbox
    await store.store_flags(inbox.id, [1, 2], FlagMode.ADD, ["\\Deleted"])
    subscription = store.feed.subscribe(teacher)
    before = store.writes.transactions
    when = dt.datetime(2026, 1, 5, 8, 30, tzinfo=dt.UTC)
    results = await asyncio.gather(
        *(store.append(teacher, "Sent", MAIL + b"sent%d" % i, ["\\Seen", "Projekt"], when)
          for i in range(10)),
        store.append(teacher, "Gibt es nicht", MAIL),
        store.append(pupil, "INBOX", b"x" * (PUPIL_QUOTA + 1)),
        store.expunge(inbox.id),
        store.store_flags(inbox.id, [3, 4], FlagMode.ADD, ["\\Flagged"]),
        store.claim_recent(inbox.id, 5),
        return_exceptions=True)
    appended, missing, too_big, expunged, stored, recent = (
        results[:10], *results[10:])
    assert store.writes.transactions - before < 10  # shared commits
    assert sorted(a.uid for a in appended) == list(range(1, 11))
    sent = (await store.mailbox_status(teacher, "Sent")).mailbox
    assert {a.uidvalidity for a in appended} == {sent.uidvalidity}
    assert isinstance(missing, MailboxNotFound)
    assert isinstance(too_big, QuotaExceeded) and too_big.permanent
    assert expunged == [1, 2]
    assert [m.uid for m in stored.updated] == [3, 4]
    assert recent == 1
    # What was written is what a reader sees, in every field.
    messages = await store.read_mailbox(teacher, "Sent")
    assert [m.flags for m in messages] == [frozenset({"\\Seen", "Projekt"})] * 10
    metas = await store.fetch_messages(sent.id, list(range(1, 11)))
    assert {m.internal_date for m in metas} == {when}
    assert [m.uid for m in await store.read_mailbox(teacher)] == [3, 4]
    assert (await store.quota(pupil)).used == 0
    teacher_used = 0
    for box in ("INBOX", "Sent"):
        teacher_used += sum(len(m.body) for m in await store.read_mailbox(teacher, box))
    assert (await store.quota(teacher)).used == teacher_used
    changes = await store.changes_since(inbox.id, stored.highestmodseq - 2)
    assert set(changes.vanished) == {1, 2}
    assert await store.claim_recent(inbox.id, 5) == 5  # claimed once only
    told = {c.mailbox_id: c.highestmodseq for c in subscription.pending()}
    assert told[inbox.id] == (await store.mailbox_status(teacher, "INBOX")).mailbox \
        .highestmodseq and told[sent.id] == sent.highestmodseq


async def test_without_group_commit_each_write_is_its_own_transaction(
        db: Database, feed) -> None:  # type: ignore[no-untyped-def]
    from tests.mailserver.store.conftest import QUOTAS

    store = MailStore(db, QUOTAS, feed, group_commit=False)
    teacher = await make_account(db, "teacher")
    await store.ensure_default_mailboxes(teacher)
    before = store.writes.transactions
    results = await asyncio.gather(*(store.append(teacher, "INBOX", MAIL + b"%d" % i)
                                     for i in range(5)))
    assert sorted(r.uid for r in results) == [1, 2, 3, 4, 5]
    assert store.writes.transactions - before == 5


async def test_a_cancelled_writer_cancels_only_itself(store: MailStore, db: Database) -> None:
    """A session that goes away while its APPEND waits for the group commit
    (no shield any more): its write is committed all the same, and the
    neighbours in its batch are answered."""
    teacher = await make_account(db, "teacher")
    await store.ensure_default_mailboxes(teacher)
    tasks = [asyncio.ensure_future(store.append(teacher, "INBOX", MAIL + b"%d" % i))
             for i in range(6)]
    await asyncio.sleep(0)  # all queued
    tasks[2].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[2], asyncio.CancelledError)
    uids = {d.uid for i, d in enumerate(done) if i != 2}
    assert len(uids) == 5 and uids <= set(range(1, 7))
    assert len(await store.read_mailbox(teacher)) == 6  # accepted before it went away


async def test_writers_are_answered_when_the_commit_returns(
        store: MailStore, db: Database) -> None:
    """The batch's callers are answered from the commit's own callback, before
    the batcher's coroutine resumes (its next event-loop turn).  This is the
    batcher task's path (PostgreSQL, SQLite without a file); on an SQLite
    file the writer thread answers (tests/mailserver/store/test_writer_thread.py)."""
    teacher = await make_account(db, "teacher")
    await store.ensure_default_mailboxes(teacher)
    order: list[str] = []
    queue = store.writes
    queue._thread = None  # type: ignore[attr-defined]
    transaction = queue._transaction

    async def watched(works, committed=None):  # type: ignore[no-untyped-def]
        result = await transaction(works, committed)
        order.append("batcher resumed")
        return result

    queue._transaction = watched  # type: ignore[method-assign]

    async def append() -> None:
        await store.append(teacher, "INBOX", MAIL)
        order.append("caller answered")

    await append()
    for _ in range(500):  # until the batcher's coroutine is done too
        if len(order) == 2:
            break
        await asyncio.sleep(0.01)
    if db.is_sqlite:  # PostgreSQL: answered in the batcher's coroutine after COMMIT
        assert order == ["caller answered", "batcher resumed"]
    else:
        assert sorted(order) == ["batcher resumed", "caller answered"]
