"""The store's side of the delivery transaction (mailserver.delivery.DeliveryTarget).

``add_local`` checks quota with the announced size (RFC 1870 SIZE) so SMTP can
refuse at RCPT time; ``commit`` writes, in ONE transaction (possibly shared
with concurrent deliveries, see batcher): the body once, one message row per
accepted local recipient with its mailbox's next UID, and one outbound queue
row per remote recipient.  Quota is checked again there with the real size:

* a recipient that no longer fits is left out of ``DeliveryReceipt.stored``
  (the others are stored), and
* if that leaves nothing stored and nothing queued, ``commit`` raises
  ``QuotaExceeded`` (``permanent`` when the message alone is too big), so a
  single-recipient delivery gets the right SMTP reply (452 4.2.2 / 552 5.2.2).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from directory.db import Database
from mailserver.changes import MailboxChange
from mailserver.delivery import (
    DeliveryReceipt,
    Envelope,
    LocalRecipient,
    RecipientOutcome,
)
from mailserver.store import flags as fl
from mailserver.store import messages as msgs
from mailserver.store import queries as q
from mailserver.store.batcher import CommitBatcher, Failed
from mailserver.store.model import (
    AccountNotFound,
    MailboxNotFound,
    Quota,
    QuotaExceeded,
    StoreError,
)
from mailserver.store.names import INBOX, normalise
from mailserver.store.raw_sql import (
    Dialect,
    Fetch,
    Many,
    Steps,
)
from mailserver.store.writer_thread import RawGroupCommit

log = logging.getLogger("schulhof.mailstore")

HASH_IN_THREAD = 256 * 1024  # hashing bigger bodies would stall the event loop


def quota_outcome(used: int, size: int, limit: int | None) -> RecipientOutcome:
    """RFC 1870 6 / RFC 3463 3.3: permanent if the message alone exceeds the quota."""
    if limit is None:
        return RecipientOutcome.ACCEPTED
    if size > limit:
        return RecipientOutcome.OVER_QUOTA_PERMANENT
    if used + size > limit or used >= limit:
        return RecipientOutcome.OVER_QUOTA_TEMPORARY
    return RecipientOutcome.ACCEPTED


@dataclass
class DeliveryWork:
    """One committed delivery as handed to the batcher."""

    envelope: Envelope
    local: list[LocalRecipient]
    remote: list[str]
    message: bytes
    blob_id: str


@dataclass
class DeliveryResult:
    receipt: DeliveryReceipt
    changes: list[MailboxChange] = field(default_factory=list)
    size: int = 0


class NoMailState(StoreError):
    """Recipients without mail state (no mailboxes) yet, on their first
    delivery: the caller makes it (``queries.ensure_accounts``) and commits
    again; nothing of the delivery was written."""

    def __init__(self, account_ids: Sequence[int]) -> None:
        super().__init__(f"no mail state of accounts {list(account_ids)}")
        self.account_ids = tuple(account_ids)


class DeliveryQueue(RawGroupCommit[DeliveryWork, DeliveryResult]):
    """The group commit of deliveries (``writer_thread.RawGroupCommit``), as
    ``write_queue.WriteQueue`` is of IMAP's writes: on an SQLite file a
    batch is BEGIN IMMEDIATE .. COMMIT in one hop on a writer thread of its
    own.  Through SQLAlchemy's session a batch took about 25 hops between
    the event loop and aiosqlite's thread (each statement's cursor,
    execute, fetch and close, BEGIN and COMMIT), and under load every hop
    waits for a busy event loop.  Every delivery batch is durable (fsync)
    before any caller is answered: the SMTP layer answers 250 after that."""

    def __init__(self, db: Database, limit_for: Callable[[str], int | None],
                 after_commit: Callable[[DeliveryResult], None], *,
                 enabled: bool = True) -> None:
        super().__init__(db, lambda dialect, works: deliveries(dialect, works, limit_for),
                         lambda _works: True, after_commit,
                         size_of=lambda work: len(work.message), enabled=enabled,
                         name="schulhof-delivery-writer")


def deliveries(dialect: Dialect, works: list[DeliveryWork],
               limit_for: Callable[[str], int | None],
               ) -> Steps[list[DeliveryResult | Failed]]:
    """A batch of deliveries as raw statements, a constant number per batch.

    Per batch, not per message: one query for account state, usage and
    mailboxes; one multi-row insert each for blobs, messages and queue rows;
    one ``UPDATE ... RETURNING`` reserving the UIDs of the touched mailboxes
    (one per distinct per-mailbox count, usually one); one usage update
    (executemany).  Refusals (quota, missing account, an account without
    mail state yet: ``NoMailState``, which the caller makes and then
    retries) are returned as ``Failed`` and nothing of a refused delivery
    is written.
    """
    account_ids = sorted({r.account_id for w in works for r in w.local})
    names = sorted({r.mailbox for w in works for r in w.local} | {INBOX})
    accounts, boxes = yield from _account_state(dialect, account_ids, names)
    plans = [_plan(work, accounts, boxes, limit_for) for work in works]
    live = [(w, p) for w, p in zip(works, plans, strict=True) if not isinstance(p, Failed)]
    if not live:
        return [p for p in plans if isinstance(p, Failed)]

    now = dialect.date(msgs.now())
    yield Many("INSERT INTO message_blobs (id, size, data, created_at) VALUES (?, ?, ?, ?) "
               "ON CONFLICT DO NOTHING",
               [(blob_id, len(data), data, now)
                for blob_id, data in {w.blob_id: w.message for w, _ in live}.items()])

    counts = Counter(mailbox_id for _, plan in live for _, mailbox_id in plan)
    next_uid, modseqs = yield from _reserve_uids(dialect, counts)
    message_rows: list[tuple[object, ...]] = []
    results: dict[int, DeliveryResult] = {}
    usage: Counter[int] = Counter()
    for work, plan in live:
        stored: list[tuple[int, int, int]] = []
        size = len(work.message)
        received = dialect.date(work.envelope.received_at)
        for recipient, mailbox_id in plan:
            uid = next_uid[mailbox_id]
            next_uid[mailbox_id] += 1
            bits, keywords = fl.encode(recipient.flags)
            message_rows.append((mailbox_id, uid, work.blob_id, size, received, bits,
                                 fl.keywords_text(keywords), modseqs[mailbox_id]))
            usage[recipient.account_id] += size
            stored.append((recipient.account_id, mailbox_id, uid))
        results[id(work)] = DeliveryResult(
            DeliveryReceipt(tuple(stored), ()),
            [MailboxChange(a, m, modseqs[m]) for a, m, _ in stored], size)
    if message_rows:
        yield Many("INSERT INTO messages (mailbox_id, uid, blob_id, size, internal_date, "
                   "system_flags, keywords, modseq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   message_rows)
        yield Many("UPDATE mail_accounts SET used_bytes = used_bytes + ? WHERE account_id = ?",
                   [(delta, account) for account, delta in sorted(usage.items())])
    yield from _queue(dialect, [w for w, _ in live], results, now)
    return [planned if isinstance(planned, Failed) else results[id(work)]
            for work, planned in zip(works, plans, strict=True)]


@dataclass
class _Usage:
    """An account's stored bytes (charged as the batch is planned) and its role;
    ``used`` None: the account has no mail state (no mailboxes) yet."""

    used: int | None
    role: str


def _account_state(dialect: Dialect, account_ids: list[int], names: list[str],
                   ) -> Steps[tuple[dict[int, _Usage], dict[tuple[int, str], int]]]:
    """(account id -> its usage and role, (account id, mailbox name) -> mailbox id).

    One query per 500 accounts (the account, its mail state and the mailboxes
    the batch delivers into).  Accounts that no longer exist are simply absent.
    """
    state: dict[int, _Usage] = {}
    boxes: dict[tuple[int, str], int] = {}
    in_names, name_values = dialect.where_in(names)
    for part in q.chunks(account_ids):
        in_accounts, account_values = dialect.where_in(part)
        for account_id, role, used, name, mailbox_id in (yield Fetch(
                "SELECT a.id, a.role, ma.used_bytes, mb.name, mb.id "
                "FROM accounts a LEFT JOIN mail_accounts ma ON ma.account_id = a.id "
                f"LEFT JOIN mailboxes mb ON mb.account_id = a.id AND mb.name {in_names} "
                f"WHERE a.id {in_accounts}", [*name_values, *account_values])):
            if account_id not in state:
                state[account_id] = _Usage(None if used is None else int(used), str(role))
            if mailbox_id is not None:
                boxes[(account_id, name)] = int(mailbox_id)
    return state, boxes


def _plan(work: DeliveryWork, accounts: dict[int, _Usage], boxes: dict[tuple[int, str], int],
          limit_for: Callable[[str], int | None]) -> list[tuple[LocalRecipient, int]] | Failed:
    """(recipient, mailbox id) to store; charges ``accounts`` usage as it goes."""
    size = len(work.message)
    by_account: dict[int, list[LocalRecipient]] = {}
    for recipient in work.local:
        by_account.setdefault(recipient.account_id, []).append(recipient)
    unprepared = sorted(a for a in by_account if a in accounts and accounts[a].used is None)
    if unprepared:
        return Failed(NoMailState(unprepared))
    plan: list[tuple[LocalRecipient, int]] = []
    refused: list[RecipientOutcome] = []
    missing: list[int] = []
    for account_id, recipients in sorted(by_account.items()):
        if account_id not in accounts:
            missing.append(account_id)
            continue
        usage = accounts[account_id]
        used = usage.used or 0
        needed = size * len(recipients)
        outcome = quota_outcome(used, needed, limit_for(usage.role))
        if outcome is not RecipientOutcome.ACCEPTED:
            refused.append(outcome)
            continue
        usage.used = used + needed
        for recipient in recipients:
            # A filter's folder that was deleted meanwhile: never lose the mail.
            mailbox_id = boxes.get((account_id, recipient.mailbox)) \
                or boxes[(account_id, INBOX)]
            plan.append((recipient, mailbox_id))
    if plan or work.remote:
        if missing:
            log.warning("event=recipient_account_gone accounts=%s", missing)
        return plan
    if missing:
        return Failed(AccountNotFound(f"no account {missing[0]}"))
    permanent = bool(refused) and all(
        o is RecipientOutcome.OVER_QUOTA_PERMANENT for o in refused)
    return Failed(QuotaExceeded("no recipient has room for the message", permanent=permanent))


def _reserve_uids(dialect: Dialect, counts: Counter[int],
                  ) -> Steps[tuple[dict[int, int], dict[int, int]]]:
    """``UPDATE ... RETURNING`` per distinct count: (first uid, new modseq) per mailbox.

    Usually one statement: single-recipient mail puts one message into each
    mailbox, a class mail the same number into each pupil's INBOX.  Messages
    delivered into one mailbox by one batch share a MODSEQ: they appeared in
    the same commit (RFC 7162 3.1.1 only needs it to increase).
    """
    by_count: dict[int, list[int]] = {}
    for mailbox_id, n in sorted(counts.items()):
        by_count.setdefault(n, []).append(mailbox_id)
    first: dict[int, int] = {}
    modseqs: dict[int, int] = {}
    for n, ids in sorted(by_count.items()):
        for part in q.chunks(ids):
            where, values = dialect.where_in(part)
            for mailbox_id, uidnext, modseq in (yield Fetch(
                    "UPDATE mailboxes SET uidnext = uidnext + ?, "
                    f"highestmodseq = highestmodseq + 1 WHERE id {where} "
                    "RETURNING id, uidnext, highestmodseq", [n, *values])):
                first[int(mailbox_id)] = int(uidnext) - n
                modseqs[int(mailbox_id)] = int(modseq)
    if len(first) != len(counts):
        raise MailboxNotFound("a mailbox vanished during delivery")
    return first, modseqs


QUEUE_ROWS_PER_INSERT = 500  # 7 parameters each: far below both backends' limits


def _queue(dialect: Dialect, works: list[DeliveryWork], results: dict[int, DeliveryResult],
           now: object) -> Steps[None]:
    rows = [(work, address) for work in works for address in work.remote]
    if not rows:
        return
    ids: dict[int, list[int]] = {}
    for start in range(0, len(rows), QUEUE_ROWS_PER_INSERT):
        part = rows[start:start + QUEUE_ROWS_PER_INSERT]
        values: list[object] = []
        for work, address in part:
            values += [work.envelope.mail_from, address, work.blob_id, now, now, 0, "queued"]
        returned = yield Fetch(
            "INSERT INTO outbound_queue (mail_from, recipient, blob_id, created_at, "
            "next_attempt_at, attempts, state) VALUES "
            + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(part)) + " RETURNING id", values)
        # One statement's new ids ascend in the order of its VALUES (SQLite's
        # rowids under the write lock, PostgreSQL's sequence drawn row by row),
        # whatever order RETURNING lists them in.
        for (work, _), queue_id in zip(part, sorted(int(row[0]) for row in returned),
                                         strict=True):
            ids.setdefault(id(work), []).append(queue_id)
    for work in works:
        old = results.get(id(work))
        stored = old.receipt.stored if old else ()
        results[id(work)] = DeliveryResult(
            DeliveryReceipt(stored, tuple(sorted(ids.get(id(work), [])))),
            old.changes if old else [], len(work.message))


class StoreDeliveryTransaction:
    """mailserver.delivery.DeliveryTransaction on the mail store."""

    def __init__(self, envelope: Envelope,
                 batcher: CommitBatcher[DeliveryWork, DeliveryResult],
                 quotas_of: Callable[[Sequence[int]], Awaitable[dict[int, Quota]]],
                 prepare: Callable[[Sequence[int]], Awaitable[object]]) -> None:
        self._envelope = envelope
        self._prepare = prepare  # makes the mail state (mailboxes) of first-time recipients
        self._batcher = batcher
        self._quotas_of = quotas_of
        self._local: dict[tuple[int, str], LocalRecipient] = {}
        self._remote: list[str] = []
        self._finished = False

    async def add_local(self, recipient: LocalRecipient,
                        size_hint: int = 0) -> RecipientOutcome:
        [outcome] = await self.add_locals([recipient], size_hint)
        return outcome

    async def add_locals(self, recipients: Sequence[LocalRecipient],
                         size_hint: int = 0) -> list[RecipientOutcome]:
        """``add_local`` for many recipients (a group's members) with one quota lookup.

        Each recipient is judged on its own, in order, exactly as separate
        ``add_local`` calls would judge it.
        """
        self._check_open()
        normalised = [LocalRecipient(r.account_id, normalise(r.mailbox), r.flags)
                      for r in recipients]
        fresh = [r.account_id for r in normalised
                 if (r.account_id, r.mailbox) not in self._local]
        quotas = await self._quotas_of(fresh) if fresh else {}
        outcomes: list[RecipientOutcome] = []
        for recipient in normalised:
            key = (recipient.account_id, recipient.mailbox)
            if key in self._local:  # the same mailbox twice (alias + address): one copy
                outcomes.append(RecipientOutcome.ACCEPTED)
                continue
            quota = quotas[recipient.account_id]
            outcome = quota_outcome(quota.used, size_hint, quota.limit)
            if outcome is RecipientOutcome.ACCEPTED:
                self._local[key] = recipient
            outcomes.append(outcome)
        return outcomes

    def add_remote(self, address: str) -> None:
        self._check_open()
        if address not in self._remote:
            self._remote.append(address)

    def redirect_local(self, mailbox: str) -> None:
        self._check_open()
        mailbox = normalise(mailbox)
        redirected: dict[tuple[int, str], LocalRecipient] = {}
        for recipient in self._local.values():
            redirected[(recipient.account_id, mailbox)] = LocalRecipient(
                recipient.account_id, mailbox, recipient.flags)
        self._local = redirected

    async def commit(self, message: bytes) -> DeliveryReceipt:
        self._check_open()
        self._finished = True
        if not self._local and not self._remote:
            return DeliveryReceipt((), ())
        if len(message) > HASH_IN_THREAD:
            digest = await asyncio.to_thread(lambda: hashlib.sha256(message).hexdigest())
        else:
            digest = hashlib.sha256(message).hexdigest()
        work = DeliveryWork(self._envelope, list(self._local.values()), list(self._remote),
                            message, digest)
        try:
            result = await self._batcher.submit(work)
        except NoMailState as missing:  # a first delivery: nothing was written
            await self._prepare(missing.account_ids)
            result = await self._batcher.submit(work)
        log.debug("event=delivered size=%d local=%d queued=%d", len(message),
                 len(result.receipt.stored), len(result.receipt.queued_ids))
        return result.receipt

    async def abort(self) -> None:
        self._finished = True
        self._local.clear()
        self._remote.clear()

    def _check_open(self) -> None:
        if self._finished:
            raise StoreError("delivery transaction already committed or aborted")

