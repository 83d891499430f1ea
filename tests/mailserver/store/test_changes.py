"""The change feed: prompt wake-ups after commits, isolation, coalescing."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from directory.db import Database
from mailserver.changes import ChangeFeed, MailboxChange
from mailserver.delivery import Envelope, LocalRecipient
from mailserver.store import FlagMode, MailStore
from tests.mailserver.store.conftest import QUOTAS, make_account


async def _deliver(store: MailStore, account_id: int) -> tuple[float, int]:
    tx = store.begin(Envelope("a@b.example", dt.datetime.now(dt.UTC)))
    await tx.add_local(LocalRecipient(account_id))
    receipt = await tx.commit(b"Subject: hello\r\n\r\nhi\r\n")
    return time.monotonic(), receipt.stored[0][1]


async def test_subscriber_is_woken_promptly_after_a_delivery_commit(
        store: MailStore, db: Database, feed: ChangeFeed) -> None:
    pupil, other = await make_account(db), await make_account(db)
    await store.ensure_default_mailboxes(pupil)
    inbox = (await store.select_snapshot(pupil, "INBOX")).mailbox
    with feed.subscribe(pupil) as mine, feed.subscribe(other) as theirs:
        woken: list[tuple[float, list[MailboxChange]]] = []

        async def listen() -> None:
            changes = await mine.wait(timeout=5)
            woken.append((time.monotonic(), changes))

        listener = asyncio.create_task(listen())
        await asyncio.sleep(0.01)  # the listener is really waiting
        committed_at, mailbox_id = await _deliver(store, pupil)
        await asyncio.wait_for(listener, 1)
        [(woken_at, changes)] = woken
        assert woken_at - committed_at < 0.1
        assert changes == [MailboxChange(pupil, inbox.id, inbox.highestmodseq + 1)]
        assert mailbox_id == inbox.id
        assert await theirs.wait(timeout=0.2) == []  # an unrelated account is not woken


async def test_the_feed_does_not_wake_before_the_data_is_readable(
        store: MailStore, db: Database, feed: ChangeFeed) -> None:
    pupil = await make_account(db)
    await store.ensure_default_mailboxes(pupil)
    with feed.subscribe(pupil) as subscription:
        waiter = asyncio.create_task(subscription.wait(timeout=5))
        await asyncio.sleep(0)
        await _deliver(store, pupil)
        [change] = await waiter
        changes = await store.changes_since(change.mailbox_id, change.highestmodseq - 1)
        assert [c.uid for c in changes.changed] == [1]
        assert changes.highestmodseq == change.highestmodseq


async def test_slow_listeners_get_coalesced_changes_not_a_queue(
        store: MailStore, db: Database, feed: ChangeFeed) -> None:
    pupil = await make_account(db, "teacher")
    await store.ensure_default_mailboxes(pupil)
    inbox = (await store.select_snapshot(pupil, "INBOX")).mailbox
    drafts = (await store.select_snapshot(pupil, "Drafts")).mailbox
    with feed.subscribe(pupil) as everything, feed.subscribe(pupil, inbox.id) as only_inbox, \
            feed.subscribe(pupil, drafts.id) as only_drafts:
        for i in range(20):
            await store.append(pupil, "INBOX", b"m%d" % i)
        result = await store.append(pupil, "Sent", b"sent")
        await store.store_flags(inbox.id, [1], FlagMode.ADD, ["\\Seen"])
        latest = (await store.select_snapshot(pupil, "INBOX")).mailbox.highestmodseq
        pending = {c.mailbox_id: c.highestmodseq for c in everything.pending()}
        assert pending == {inbox.id: latest, result.mailbox_id: 2}
        assert [c.highestmodseq for c in only_inbox.pending()] == [latest]
        assert everything.pending() == []
        assert only_drafts.pending() == []


async def test_two_stores_have_independent_feeds(db: Database) -> None:
    feed_a, feed_b = ChangeFeed(), ChangeFeed()
    store_a = MailStore(db, QUOTAS, feed_a)
    pupil = await make_account(db)
    with feed_a.subscribe(pupil) as a, feed_b.subscribe(pupil) as b:
        await store_a.append(pupil, "INBOX", b"x")
        assert len(a.pending()) == 1
        assert b.pending() == []
    assert feed_a.subscriber_count(pupil) == 0


async def test_closing_a_subscription_releases_its_waiter(feed: ChangeFeed) -> None:
    subscription = feed.subscribe(1)
    waiter = asyncio.create_task(subscription.wait())
    await asyncio.sleep(0)
    subscription.close()
    assert await asyncio.wait_for(waiter, 1) == []
    feed.publish(MailboxChange(1, 1, 5))
    assert subscription.pending() == []
