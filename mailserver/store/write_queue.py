"""Group commit for the mail store's own writes: STORE, APPEND, EXPUNGE and
\\Recent claims of every session share transactions and fsyncs.

Every commit is an fsync (SQLite ``synchronous=FULL``, PostgreSQL WAL flush)
and SQLite has one writer: with one transaction per APPEND or EXPUNGE, 20
busy IMAP sessions queued behind each other's fsyncs (p50 of a write 150-550
ms under load).  Here writes that arrive while a commit runs go into the
next transaction together (``mailserver.store.batcher.CommitBatcher``):
each caller is answered only after that commit returned, and a refused
one (``Failed``: quota, a mailbox that is gone) has written nothing and
fails alone.  Any other error makes the
batcher retry the batch one write per transaction.

Durability classes: a batch with an APPEND commits with fsync (SQLite
``synchronous=FULL``, PostgreSQL's WAL flush), so an accepted APPEND, like an
accepted delivery, is never lost.  A batch of only STOREs, EXPUNGEs and
\\Recent claims commits without waiting for the disk (``raw_sql``,
``durable=False``): a crash of the server process never loses it (the
database has it), a power failure may lose the last such changes (as
Dovecot's default, which does not fsync flag changes), never an APPEND and
never the database's consistency; the next durable commit covers them.

Within a transaction: APPENDs first (a fixed number of statements for all
of them), then EXPUNGEs and \\Recent claims in arrival order, then the
STOREs (``flag_batch``: they read HIGHESTMODSEQ after the others moved it).
The whole batch is one generator of raw statements (``raw_sql``): on SQLite
it runs in one hop to the database thread.  Writes of one session never meet in a batch
(a session waits for each command's answer), and writes of different
sessions have no order to keep.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from directory.db import Database
from mailserver.store import flags as fl
from mailserver.store import queries as q
from mailserver.store.batcher import Failed
from mailserver.store.flag_batch import FlagDone, FlagWork, apply_flags
from mailserver.store.model import (
    AccountNotFound,
    AppendResult,
    MailboxNotFound,
    QuotaExceeded,
    StoreError,
)
from mailserver.store.raw_sql import (
    Dialect,
    Fetch,
    Many,
    Steps,
)
from mailserver.store.writer_thread import RawGroupCommit


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
    # An IMAP4rev1 session that has this mailbox (by id) selected read-write
    # claims the messages up to the new one as \Recent in the same
    # transaction (RFC 3501 2.3.2, 6.3.11): no second batch after the APPEND.
    claim_recent_in: int | None = None


@dataclass(frozen=True)
class AppendDone:
    account_id: int
    result: AppendResult
    modseq: int
    # With ``claim_recent_in``: the first UID not claimed before (the claim
    # is from there up to the new UID); None: nothing was claimed.
    recent_first: int | None = None


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


class WriteQueue(RawGroupCommit[WriteWork, WriteDone]):
    """The store's group commit (``writer_thread.RawGroupCommit``): on an
    SQLite file the batches run on a writer thread of their own.

    Durability class: a batch with an APPEND is durable when answered
    (like an accepted delivery); flag changes, expunges and \\Recent
    claims alone may be lost on power failure, never on a crash of the
    server process (Dovecot does not fsync flag changes either)."""

    def __init__(self, db: Database, limit_for: Callable[[str], int | None],
                 after_commit: Callable[[WriteDone], None], *, enabled: bool = True) -> None:
        super().__init__(db, lambda dialect, works: _writes(dialect, works, limit_for),
                         _durable, after_commit, size_of=size_of, enabled=enabled,
                         name="schulhof-imap-writer")


def _durable(works: Sequence[WriteWork]) -> bool:
    return any(isinstance(work, AppendWork) for work in works)


class MailStateMissing(StoreError):
    """The account has no mail state yet (no default mailboxes): the caller
    makes it (``MailStore.ensure_default_mailboxes``) and tries again."""


def _writes(dialect: Dialect, works: list[WriteWork], limit_for: Callable[[str], int | None],
            ) -> Steps[list[WriteDone | Failed]]:
    out: dict[int, WriteDone | Failed] = {}
    appends = [(i, w) for i, w in enumerate(works) if isinstance(w, AppendWork)]
    flags = [(i, w) for i, w in enumerate(works) if isinstance(w, FlagWork)]
    if appends:
        done = yield from _appends(dialect, [w for _, w in appends], limit_for)
        out.update(zip([i for i, _ in appends], done, strict=True))
    for i, work in enumerate(works):
        if isinstance(work, ExpungeWork):
            out[i] = yield from _expunge(dialect, work)
        elif isinstance(work, RecentWork):
            out[i] = RecentDone((yield from _claim_recent(work)))
    if flags:
        stored = yield from apply_flags(dialect, [w for _, w in flags])
        out.update(zip([i for i, _ in flags], stored, strict=True))
    return [out[i] for i in range(len(works))]


def _appends(dialect: Dialect, works: list[AppendWork], limit_for: Callable[[str], int | None],
             ) -> Steps[list[WriteDone | Failed]]:
    """All APPENDs of a transaction in a fixed number of statements (as
    delivery writes): account state and mailboxes, the bodies, the UIDs
    (one ``UPDATE ... RETURNING`` per mailbox), the message rows, the quota
    counters.  A refused APPEND writes nothing."""
    accounts = sorted({w.account_id for w in works})
    names = sorted({w.mailbox for w in works})
    in_accounts, account_values = dialect.where_in(accounts)
    in_names, name_values = dialect.where_in(names)
    usage: dict[int, list[int | str | None]] = {}  # account -> [used, role]
    boxes: dict[tuple[int, str], tuple[int, int]] = {}  # -> (id, uidvalidity)
    for account_id, role, used, name, mailbox_id, validity in (yield Fetch(
            "SELECT a.id, a.role, ma.used_bytes, mb.name, mb.id, mb.uidvalidity "
            "FROM accounts a LEFT JOIN mail_accounts ma ON ma.account_id = a.id "
            f"LEFT JOIN mailboxes mb ON mb.account_id = a.id AND mb.name {in_names} "
            f"WHERE a.id {in_accounts}", [*name_values, *account_values])):
        usage.setdefault(int(account_id), [None if used is None else int(used), role])
        if mailbox_id is not None:
            boxes[(int(account_id), name)] = (int(mailbox_id), int(validity))
    planned: list[tuple[AppendWork, int] | Failed] = []
    for work in works:
        found = usage.get(work.account_id)
        if found is None:
            planned.append(Failed(AccountNotFound(f"no account {work.account_id}")))
            continue
        used, role = found
        if used is None:
            planned.append(Failed(MailStateMissing(f"no mail state of {work.account_id}")))
            continue
        box = boxes.get((work.account_id, work.mailbox))
        if box is None:
            planned.append(Failed(MailboxNotFound(f"no mailbox {work.mailbox!r}")))
            continue
        limit = limit_for(str(role))
        size = len(work.message)
        if limit is not None and int(used) + size > limit:
            planned.append(Failed(QuotaExceeded(f"quota of {limit} bytes exceeded",
                                                permanent=size > limit)))
            continue
        found[0] = int(used) + size
        planned.append((work, box[0]))
    live = [p for p in planned if not isinstance(p, Failed)]
    if not live:
        return [p for p in planned if isinstance(p, Failed)]
    now = dialect.date(dt.datetime.now(dt.UTC))
    yield Many("INSERT INTO message_blobs (id, size, data, created_at) VALUES (?, ?, ?, ?) "
               "ON CONFLICT DO NOTHING",
               [(blob_id, len(data), data, now)
                for blob_id, data in {w.blob_id: w.message for w, _ in live}.items()])
    next_uid: dict[int, int] = {}
    modseqs: dict[int, int] = {}
    for mailbox_id, n in sorted(Counter(mailbox_id for _, mailbox_id in live).items()):
        reserved = yield Fetch("UPDATE mailboxes SET uidnext = uidnext + ?, "
                               "highestmodseq = highestmodseq + 1 WHERE id = ? "
                               "RETURNING uidnext, highestmodseq", [n, mailbox_id])
        if not reserved:
            raise MailboxNotFound(f"mailbox {mailbox_id} vanished")
        next_uid[mailbox_id] = int(reserved[0][0]) - n
        modseqs[mailbox_id] = int(reserved[0][1])
    validity = {box_id: uidvalidity for box_id, uidvalidity in boxes.values()}
    rows: list[tuple[object, ...]] = []
    usage_delta: Counter[int] = Counter()
    results: dict[int, AppendDone] = {}
    recent: dict[int, int] = {}  # mailbox -> first UID not claimed as \Recent
    claims = sorted({box for work, box in live if work.claim_recent_in == box})
    if claims:
        where, values = dialect.where_in(claims)
        recent = {int(box): int(first) for box, first in (yield Fetch(
            f"SELECT id, recent_uid FROM mailboxes WHERE id {where}", values))}
    for work, mailbox_id in live:
        uid = next_uid[mailbox_id]
        next_uid[mailbox_id] += 1
        rows.append((mailbox_id, uid, work.blob_id, len(work.message),
                     dialect.date(work.internal_date), work.bits, work.keywords,
                     modseqs[mailbox_id]))
        usage_delta[work.account_id] += len(work.message)
        first = None
        if work.claim_recent_in == mailbox_id:
            # In UID order: each claimer gets from where the one before stopped.
            first, recent[mailbox_id] = recent[mailbox_id], max(recent[mailbox_id], uid + 1)
        results[id(work)] = AppendDone(
            work.account_id, AppendResult(mailbox_id, validity[mailbox_id], uid),
            modseqs[mailbox_id], first)
    if claims:
        # The mailbox rows are this transaction's since the UIDNEXT update.
        yield Many("UPDATE mailboxes SET recent_uid = ? WHERE id = ? AND recent_uid < ?",
                   [(recent[box], box, recent[box]) for box in claims])
    yield Many("INSERT INTO messages (mailbox_id, uid, blob_id, size, internal_date, "
               "system_flags, keywords, modseq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    yield Many("UPDATE mail_accounts SET used_bytes = used_bytes + ? WHERE account_id = ?",
               [(delta, account) for account, delta in sorted(usage_delta.items())])
    return [p if isinstance(p, Failed) else results[id(p[0])] for p in planned]


def _expunge(dialect: Dialect, work: ExpungeWork) -> Steps[ExpungeDone | Failed]:
    """Only messages flagged \\Deleted go (RFC 9051 6.4.3); one new MODSEQ
    for all of them, their VANISHED records (RFC 7162 3.2.10), quota freed."""
    found = yield Fetch(f"SELECT account_id, highestmodseq FROM mailboxes "
                        f"WHERE id = ?{dialect.for_update}", [work.mailbox_id])
    if not found:
        return Failed(MailboxNotFound(f"no mailbox {work.mailbox_id}"))
    account_id, highest = int(found[0][0]), int(found[0][1])
    deleted = f"(system_flags & {fl.DELETED}) != 0"
    rows: list[tuple[int, int]] = []
    if work.uids is None:
        rows = [(int(u), int(s)) for u, s in (yield Fetch(
            f"SELECT uid, size FROM messages WHERE mailbox_id = ? AND {deleted}",
            [work.mailbox_id]))]
    else:
        for chunk in q.chunks(work.uids):
            where, values = dialect.where_in(chunk)
            rows += [(int(u), int(s)) for u, s in (yield Fetch(
                f"SELECT uid, size FROM messages WHERE mailbox_id = ? AND uid {where} "
                f"AND {deleted}", [work.mailbox_id, *values]))]
    if not rows:
        return ExpungeDone(account_id, work.mailbox_id, [], highest)
    rows.sort()
    [(modseq, *_)] = yield Fetch("UPDATE mailboxes SET highestmodseq = highestmodseq + 1 "
                                 "WHERE id = ? RETURNING highestmodseq", [work.mailbox_id])
    uids = [uid for uid, _ in rows]
    for chunk in q.chunks(uids):
        where, values = dialect.where_in(chunk)
        yield Fetch(f"DELETE FROM messages WHERE mailbox_id = ? AND uid {where}",
                    [work.mailbox_id, *values])
    yield Many("INSERT INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)",
               [(work.mailbox_id, uid, modseq) for uid in uids])
    yield Fetch("UPDATE mail_accounts SET used_bytes = used_bytes - ? WHERE account_id = ?",
                [sum(size for _, size in rows), account_id])
    return ExpungeDone(account_id, work.mailbox_id, uids, int(modseq))


def _claim_recent(work: RecentWork) -> Steps[int | None]:
    """The conditional UPDATE makes sure two claimers never both get a UID
    (RFC 3501 2.3.2: recent to one session only)."""
    for _ in range(5):
        found = yield Fetch("SELECT recent_uid FROM mailboxes WHERE id = ?", [work.mailbox_id])
        if not found:
            return None
        first = int(found[0][0])
        if first >= work.up_to:
            return first
        claimed = yield Fetch("UPDATE mailboxes SET recent_uid = ? WHERE id = ? "
                              "AND recent_uid = ? RETURNING id",
                              [work.up_to, work.mailbox_id, first])
        if claimed:
            return first
    return work.up_to  # lost every race: nothing is recent to this session
