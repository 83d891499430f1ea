"""Durability classes of the store's writes (mailserver.store.raw_sql,
write_queue): an APPEND is on disk when it is answered (like an accepted
delivery); a batch of only flag changes, expunges and \\Recent claims is
committed without waiting for the disk (SQLite ``synchronous=NORMAL``,
PostgreSQL ``synchronous_commit = off``), so a power failure may lose it,
a crash of the server process never.  What a transaction runs with is read
inside the transaction itself."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from directory.db import Database
from mailserver.delivery import Envelope, LocalRecipient
from mailserver.store import MailStore
from mailserver.store import delivery as dl
from mailserver.store import write_queue as wq
from mailserver.store.messages import now as msgs_now
from mailserver.store.model import FlagMode
from mailserver.store.raw_sql import Dialect, Fetch, Steps, run_transaction
from tests.mailserver.store.conftest import make_account

MAIL = b"From: a@schule.test\r\nSubject: Test\r\n\r\nHallo\r\n"


def _sync_setting(dialect: Dialect) -> Steps[str]:
    """What this transaction commits with: SQLite's synchronous (1 NORMAL,
    2 FULL), PostgreSQL's synchronous_commit."""
    rows = yield Fetch("PRAGMA synchronous" if dialect.sqlite else "SHOW synchronous_commit")
    return str(rows[0][0])


@pytest.mark.parametrize("durable", [True, False])
async def test_a_transaction_commits_with_its_durability_class(
        db: Database, durable: bool) -> None:
    seen = await run_transaction(db, _sync_setting, durable=durable)
    if db.is_sqlite:
        assert seen == ("2" if durable else "1")
    else:
        assert seen == ("on" if durable else "off")
    # The next transaction on the same connection is durable again.
    assert await run_transaction(db, _sync_setting) in ("2", "on")


async def test_a_failed_fast_transaction_leaves_the_connection_durable(db: Database) -> None:
    def failing(dialect: Dialect) -> Steps[None]:
        yield Fetch("SELECT 1")
        raise RuntimeError("refused")

    with pytest.raises(RuntimeError):
        await run_transaction(db, failing, durable=False)
    assert await run_transaction(db, _sync_setting) in ("2", "on")


async def test_only_batches_with_an_append_wait_for_the_disk(
        store: MailStore, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    account = await make_account(db, "teacher")
    await store.ensure_default_mailboxes(account)
    # (kinds of work in the batch, its durability), one per transaction, read
    # inside the transaction (on SQLite the batches run on the store's writer
    # thread, elsewhere on the batcher's task).
    batches: list[tuple[set[str], bool]] = []
    real_writes = wq._writes

    def writes(dialect: Dialect, works: list[wq.WriteWork], limit_for: Any,
               ) -> Steps[Any]:
        setting = yield from _sync_setting(dialect)
        batches.append(({type(work).__name__ for work in works}, setting in ("2", "on")))
        return (yield from real_writes(dialect, works, limit_for))

    monkeypatch.setattr(wq, "_writes", writes)
    await store.append(account, "INBOX", MAIL)
    await store.append(account, "INBOX", MAIL + b"2")
    inbox = (await store.mailbox_status(account, "INBOX")).mailbox
    await store.store_flags(inbox.id, [1], FlagMode.ADD, ["\\Deleted"])
    await store.expunge(inbox.id)
    await store.claim_recent(inbox.id, 3)
    await asyncio.gather(*(store.store_flags(inbox.id, [2], FlagMode.ADD, [f"k{i}"])
                           for i in range(5)),
                         store.append(account, "INBOX", MAIL + b"3"))
    assert batches[:5] == [({"AppendWork"}, True), ({"AppendWork"}, True),
                           ({"FlagWork"}, False), ({"ExpungeWork"}, False),
                           ({"RecentWork"}, False)]
    for kinds, durable in batches[5:]:
        assert durable == ("AppendWork" in kinds), batches
    # What was committed is there, durable or not.
    messages = await store.read_mailbox(account)
    assert [m.uid for m in messages] == [2, 3]
    assert {f"k{i}" for i in range(5)} <= set(messages[0].flags)


async def test_delivery_batches_wait_for_the_disk_in_one_hop(
        store: MailStore, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every delivery batch commits with fsync before its callers are answered
    (SMTP answers 250 after that); on an SQLite file the whole transaction
    runs on the store's delivery writer thread, BEGIN to COMMIT."""
    account = await make_account(db, "teacher")
    await store.ensure_default_mailboxes(account)
    batches: list[tuple[int, bool, str]] = []
    real = dl.deliveries

    def deliveries(dialect: Dialect, works: list[dl.DeliveryWork], limit_for: Any,
                   ) -> Steps[Any]:
        setting = yield from _sync_setting(dialect)
        batches.append((len(works), setting in ("2", "on"), threading.current_thread().name))
        return (yield from real(dialect, works, limit_for))

    monkeypatch.setattr(dl, "deliveries", deliveries)

    async def deliver(i: int) -> None:
        tx = store.begin(Envelope("a@partner.test", msgs_now()))
        await tx.add_local(LocalRecipient(account))
        await tx.commit(MAIL + b"%d" % i)

    await asyncio.gather(*(deliver(i) for i in range(8)))
    assert sum(n for n, _, _ in batches) == 8
    assert all(durable for _, durable, _ in batches), batches
    if db.sqlite_file is not None:
        assert {thread for _, _, thread in batches} == {"schulhof-delivery-writer"}
    assert [m.uid for m in await store.read_mailbox(account)] == list(range(1, 9))
