"""Measure delivery throughput (group commit on/off) and SELECT snapshot time.

    .venv/bin/python -m tests.mailserver.store.bench_delivery [postgres-admin-url]

N concurrent tasks (like N SMTP connections) each commit M 10 KB mails to
one of 30 pupils; reported as messages per second.  Durability settings are
the production ones (SQLite WAL + synchronous=FULL).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

from directory.db import Database
from mailserver.changes import ChangeFeed
from mailserver.delivery import Envelope, LocalRecipient
from mailserver.store import MailStore
from mailserver.store import messages as msgs
from mailserver.store import queries as q
from tests.mailserver.store.conftest import QUOTAS, make_account
from tests.support.databases import PostgresDatabases, SqliteDatabases

BODY = b"Subject: bench\r\n\r\n" + b"x" * 10_000


async def deliveries(url: str, *, group_commit: bool, tasks: int, per_task: int) -> float:
    db = Database(url)
    store = MailStore(db, QUOTAS, ChangeFeed(), group_commit=group_commit)
    accounts = [await make_account(db, "teacher") for _ in range(30)]
    for account in accounts:
        await store.ensure_default_mailboxes(account)

    async def connection(n: int) -> None:
        for i in range(per_task):
            tx = store.begin(Envelope("a@b.example", dt.datetime.now(dt.UTC)))
            await tx.add_local(LocalRecipient(accounts[(n * per_task + i) % 30]), len(BODY))
            await tx.commit(BODY + b"%d-%d" % (n, i))

    start = time.perf_counter()
    await asyncio.gather(*(connection(n) for n in range(tasks)))
    rate = tasks * per_task / (time.perf_counter() - start)
    await db.dispose()
    return rate


async def snapshot(url: str, n: int = 100_000) -> float:
    db = Database(url)
    store = MailStore(db, QUOTAS, ChangeFeed())
    account = await make_account(db, "teacher")
    await store.ensure_default_mailboxes(account)
    inbox = (await store.select_snapshot(account, "INBOX")).mailbox
    async with db.write() as session:
        await q.put_blob(session, "0" * 64, b"x")
        for start in range(0, n, 10_000):
            await msgs.insert_messages(session, inbox.id, account, [
                {"blob_id": "0" * 64, "size": 1, "internal_date": msgs.now(),
                 "system_flags": i % 3, "keywords": "" if i % 7 else "Work"}
                for i in range(start, start + 10_000)])
    begin = time.perf_counter()
    snap = await store.select_snapshot(account, "INBOX")
    took = time.perf_counter() - begin
    assert len(snap.messages) == n
    await db.dispose()
    return took


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    pg = sys.argv[1] if len(sys.argv) > 1 else None
    factories: list[tuple[str, object]] = [("sqlite", SqliteDatabases(tmp))]
    if pg:
        factories.append(("postgresql", PostgresDatabases(pg)))
    for name, factory in factories:
        for group_commit in (False, True):
            rate = asyncio.run(deliveries(factory.fresh(tmp), group_commit=group_commit,
                                          tasks=10, per_task=100))
            print(f"backend={name} group_commit={group_commit} tasks=10 "
                  f"msgs_per_s={rate:.0f}")
        took = asyncio.run(snapshot(factory.fresh(tmp)))
        print(f"backend={name} select_snapshot_100k_s={took:.3f}")
        factory.close()


if __name__ == "__main__":
    main()
