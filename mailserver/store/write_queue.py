"""Group commit for the mail store's own writes: STORE, APPEND, EXPUNGE and
\\Recent claims of every session share transactions and fsyncs.

Every commit is an fsync (SQLite ``synchronous=FULL``, PostgreSQL WAL flush)
and SQLite has one writer: with one transaction per APPEND or EXPUNGE, 20
busy IMAP sessions queued behind each other's fsyncs (p50 of a write 150-550
ms under load).  Here writes that arrive while a commit runs go into the
next transaction together (``mailserver.store.batcher.CommitBatcher``):
each caller is answered only after that commit returned, so an accepted
write is never lost, and a refused one (``Failed``: quota, a mailbox that
is gone) has written nothing and fails alone.  Any other error makes the
batcher retry the batch one write per transaction.

Within a transaction: APPENDs first (a fixed number of statements for all
of them, the delivery path's statements), then EXPUNGEs and \\Recent claims
in arrival order, then the STOREs (``flag_batch``: they read HIGHESTMODSEQ
after the others moved it).  Writes of one session never meet in a batch
(a session waits for each command's answer), and writes of different
sessions have no order to keep.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from mailserver.store import delivery as dl
from mailserver.store import flags as fl
from mailserver.store.batcher import Failed
from mailserver.store.flag_batch import FlagDone, FlagWork, apply_flags
from mailserver.store.model import (
    AccountNotFound,
    AppendResult,
    MailboxNotFound,
    QuotaExceeded,
)
from mailserver.store.raw_sql import RawTransaction


@dataclass(frozen=True)
class AppendWork:
    """APPEND (RFC 9051 6.3.12) of ``message`` into ``mailbox`` (normalised)."""

    account_id: int
    mailbox: str
    message: bytes
    blob_id: str
    bits: int
    keywords: str
    internal_date: dt.datetime


@dataclass(frozen=True)
class AppendDone:
    account_id: int
    result: AppendResult
    modseq: int


@dataclass(frozen=True)
class ExpungeWork:
    """EXPUNGE / UID EXPUNGE (RFC 9051 6.4.3, 6.4.9); ``uids`` None: all."""

    mailbox_id: int
    uids: tuple[int, ...] | None


@dataclass(frozen=True)
class ExpungeDone:
    account_id: int
    mailbox_id: int
    expunged: list[int]
    modseq: int


@dataclass(frozen=True)
class RecentWork:
    """Claim the UIDs below ``up_to`` as \\Recent (RFC 3501 2.3.2)."""

    mailbox_id: int
    up_to: int


@dataclass(frozen=True)
class RecentDone:
    first: int | None  # the first UID not yet claimed before; None: mailbox gone


WriteWork = AppendWork | ExpungeWork | RecentWork | FlagWork
WriteDone = AppendDone | ExpungeDone | RecentDone | FlagDone


def size_of(work: WriteWork) -> int:
    return len(work.message) if isinstance(work, AppendWork) else 0


async def apply_writes(session: AsyncSession, works: Sequence[WriteWork],
                       limit_for: Callable[[str], int | None],
                       ) -> list[WriteDone | Failed]:
    """One transaction's writes; results in the order of ``works``."""
    out: dict[int, WriteDone | Failed] = {}
    appends = [(i, w) for i, w in enumerate(works) if isinstance(w, AppendWork)]
    flags = [(i, w) for i, w in enumerate(works) if isinstance(w, FlagWork)]
    if appends:
        done = await _appends(session, [w for _, w in appends], limit_for)
        out.update(zip([i for i, _ in appends], done, strict=True))
    raw = await RawTransaction.of(session)
    for i, work in enumerate(works):
        if isinstance(work, ExpungeWork):
            out[i] = await _expunge(raw, work)
        elif isinstance(work, RecentWork):
            out[i] = RecentDone(await _claim_recent(raw, work))
    if flags:
        stored = await apply_flags(raw, [w for _, w in flags])
        out.update(zip([i for i, _ in flags], stored, strict=True))
    return [out[i] for i in range(len(works))]


async def _appends(session: AsyncSession, works: list[AppendWork],
                   limit_for: Callable[[str], int | None]) -> list[WriteDone | Failed]:
    """All APPENDs of a transaction in a fixed number of statements (the
    delivery path's): account state and mailboxes, the bodies, the UIDs,
    the message rows, the quota counters.  A refused APPEND writes nothing."""
    conn = await session.connection()
    accounts, boxes = await dl.account_state(
        session, conn, sorted({w.account_id for w in works}),
        sorted({w.mailbox for w in works}))
    planned: list[tuple[AppendWork, int] | Failed] = []
    for work in works:
        usage = accounts.get(work.account_id)
        mailbox_id = boxes.get((work.account_id, work.mailbox))
        if usage is None:
            planned.append(Failed(AccountNotFound(f"no account {work.account_id}")))
            continue
        if mailbox_id is None:
            planned.append(Failed(MailboxNotFound(f"no mailbox {work.mailbox!r}")))
            continue
        limit = limit_for(usage.role)
        size = len(work.message)
        if limit is not None and usage.used + size > limit:
            planned.append(Failed(QuotaExceeded(f"quota of {limit} bytes exceeded",
                                                permanent=size > limit)))
            continue
        usage.used += size
        planned.append((work, mailbox_id))
    live = [p for p in planned if not isinstance(p, Failed)]
    if not live:
        return [p for p in planned if isinstance(p, Failed)]
    now = dt.datetime.now(dt.UTC)
    await conn.execute(dl.INSERT_BLOBS[conn.dialect.name], [
        {"id": blob_id, "size": len(data), "data": data, "created_at": now}
        for blob_id, data in {w.blob_id: w.message for w, _ in live}.items()])
    counts = Counter(mailbox_id for _, mailbox_id in live)
    next_uid, modseqs = await dl.reserve_uids(conn, counts)
    raw = await RawTransaction.of(session)
    where, values = raw.placeholders(sorted(counts))
    validity = {int(i): int(v) for i, v in await raw.fetch(
        f"SELECT id, uidvalidity FROM mailboxes WHERE id {where}", values)}
    rows: list[dict[str, object]] = []
    usage_delta: Counter[int] = Counter()
    results: dict[int, AppendDone] = {}
    for work, mailbox_id in live:
        uid = next_uid[mailbox_id]
        next_uid[mailbox_id] += 1
        rows.append({"mailbox_id": mailbox_id, "uid": uid, "blob_id": work.blob_id,
                     "size": len(work.message), "internal_date": work.internal_date,
                     "system_flags": work.bits, "keywords": work.keywords,
                     "modseq": modseqs[mailbox_id]})
        usage_delta[work.account_id] += len(work.message)
        results[id(work)] = AppendDone(
            work.account_id, AppendResult(mailbox_id, validity[mailbox_id], uid),
            modseqs[mailbox_id])
    await conn.execute(dl.INSERT_MESSAGES, rows)
    await conn.execute(dl.ADD_USAGE, [{"account": account, "delta": delta}
                                      for account, delta in sorted(usage_delta.items())])
    return [p if isinstance(p, Failed) else results[id(p[0])] for p in planned]


async def _expunge(raw: RawTransaction, work: ExpungeWork) -> ExpungeDone | Failed:
    """Only messages flagged \\Deleted go (RFC 9051 6.4.3); one new MODSEQ
    for all of them, their VANISHED records (RFC 7162 3.2.10), quota freed."""
    lock = "" if raw.sqlite else " FOR UPDATE"
    found = await raw.fetch(f"SELECT account_id, highestmodseq FROM mailboxes "
                            f"WHERE id = ?{lock}", [work.mailbox_id])
    if not found:
        return Failed(MailboxNotFound(f"no mailbox {work.mailbox_id}"))
    account_id, highest = int(found[0][0]), int(found[0][1])
    deleted = f"(system_flags & {fl.DELETED}) != 0"
    rows: list[tuple[int, int]] = []
    if work.uids is None:
        rows = [(int(u), int(s)) for u, s in await raw.fetch(
            f"SELECT uid, size FROM messages WHERE mailbox_id = ? AND {deleted}",
            [work.mailbox_id])]
    else:
        ordered = sorted(set(work.uids))
        for start in range(0, len(ordered), 5000):
            where, values = raw.placeholders(ordered[start:start + 5000])
            rows += [(int(u), int(s)) for u, s in await raw.fetch(
                f"SELECT uid, size FROM messages WHERE mailbox_id = ? AND uid {where} "
                f"AND {deleted}", [work.mailbox_id, *values])]
    if not rows:
        return ExpungeDone(account_id, work.mailbox_id, [], highest)
    rows.sort()
    [(modseq,)] = await raw.fetch("UPDATE mailboxes SET highestmodseq = highestmodseq + 1 "
                                  "WHERE id = ? RETURNING highestmodseq", [work.mailbox_id])
    uids = [uid for uid, _ in rows]
    for start in range(0, len(uids), 5000):
        where, values = raw.placeholders(uids[start:start + 5000])
        await raw.execute(f"DELETE FROM messages WHERE mailbox_id = ? AND uid {where}",
                          [work.mailbox_id, *values])
    await raw.executemany("INSERT INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)",
                          [(work.mailbox_id, uid, modseq) for uid in uids])
    await raw.execute("UPDATE mail_accounts SET used_bytes = used_bytes - ? "
                      "WHERE account_id = ?", [sum(size for _, size in rows), account_id])
    return ExpungeDone(account_id, work.mailbox_id, uids, int(modseq))


async def _claim_recent(raw: RawTransaction, work: RecentWork) -> int | None:
    """``mailserver.store.mailboxes.claim_recent`` with ``claim``: the
    conditional UPDATE makes sure two claimers never both get a UID."""
    for _ in range(5):
        found = await raw.fetch("SELECT recent_uid FROM mailboxes WHERE id = ?",
                                [work.mailbox_id])
        if not found:
            return None
        first = int(found[0][0])
        if first >= work.up_to:
            return first
        claimed = await raw.fetch("UPDATE mailboxes SET recent_uid = ? WHERE id = ? "
                                  "AND recent_uid = ? RETURNING id",
                                  [work.up_to, work.mailbox_id, first])
        if claimed:
            return first
    return work.up_to  # lost every race: nothing is recent to this session
