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
import datetime as dt
import hashlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import BigInteger, and_, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql as postgresql_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

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


# The statements of a delivery batch, built once: building and cache-keying a
# SQLAlchemy statement costs more than running it, and this is the hot path.
# Lists go in as expanding bind parameters, so one compiled form serves every batch.
_a, _ma, _mb = q.accounts_t, q.mail_accounts, q.mailboxes
_STATE = (
    select(_a.c.id, _a.c.role, _ma.c.used_bytes, _mb.c.name, _mb.c.id)
    .select_from(_a.outerjoin(_ma, _ma.c.account_id == _a.c.id).outerjoin(
        _mb, and_(_mb.c.account_id == _a.c.id,
                  _mb.c.name.in_(bindparam("names", expanding=True)))))
    .where(_a.c.id.in_(bindparam("ids", expanding=True))))
_FRESH_BOXES = (
    select(_mb.c.account_id, _mb.c.name, _mb.c.id)
    .where(_mb.c.account_id.in_(bindparam("ids", expanding=True)),
           _mb.c.name.in_(bindparam("names", expanding=True))))
_RESERVE_UIDS = (
    update(_mb).where(_mb.c.id.in_(bindparam("ids", expanding=True)))
    .values(uidnext=_mb.c.uidnext + bindparam("n", type_=BigInteger),
            highestmodseq=_mb.c.highestmodseq + 1)
    .returning(_mb.c.id, _mb.c.uidnext, _mb.c.highestmodseq))
_INSERT_MESSAGES = insert(q.messages)
_ADD_USAGE = (
    update(_ma).where(_ma.c.account_id == bindparam("account"))
    .values(used_bytes=_ma.c.used_bytes + bindparam("delta", type_=BigInteger)))
_INSERT_QUEUE = insert(q.outbound).returning(q.outbound.c.id, sort_by_parameter_order=True)
_INSERT_BLOBS = {
    "sqlite": sqlite_dialect.insert(q.blobs).on_conflict_do_nothing(),
    "postgresql": postgresql_dialect.insert(q.blobs).on_conflict_do_nothing(),
}


async def apply_deliveries(session: AsyncSession, works: Sequence[DeliveryWork],
                           limit_for: Callable[[str], int | None],
                           ) -> list[DeliveryResult | Failed]:
    """Write a batch of deliveries inside ``session`` with a constant number of statements.

    Per batch, not per message: one query for account state, usage and
    mailboxes; one multi-row insert each for blobs, messages and queue rows;
    one ``UPDATE ... RETURNING`` reserving the UIDs of the touched mailboxes
    (one per distinct per-mailbox count, usually one); one usage update
    (executemany).  Refusals (quota, missing account) are returned as
    ``Failed`` and nothing of a refused delivery is written.
    """
    conn = await session.connection()
    account_ids = sorted({r.account_id for w in works for r in w.local})
    names = sorted({r.mailbox for w in works for r in w.local} | {INBOX})
    accounts, boxes = await _account_state(session, conn, account_ids, names)
    plans: list[list[tuple[LocalRecipient, int]] | Failed] = []
    for work in works:
        plans.append(_plan(work, accounts, boxes, limit_for))
    live = [(w, p) for w, p in zip(works, plans, strict=True) if not isinstance(p, Failed)]
    if not live:
        return [p for p in plans if isinstance(p, Failed)]

    now = msgs.now()
    blob_rows = {w.blob_id: w.message for w, _ in live}
    await conn.execute(_INSERT_BLOBS[conn.dialect.name], [
        {"id": blob_id, "size": len(data), "data": data, "created_at": now}
        for blob_id, data in blob_rows.items()])

    counts = Counter(mailbox_id for _, plan in live for _, mailbox_id in plan)
    next_uid, modseqs = await _reserve_uids(conn, counts)
    message_rows: list[dict[str, object]] = []
    results: dict[int, DeliveryResult] = {}
    usage: Counter[int] = Counter()
    for work, plan in live:
        stored: list[tuple[int, int, int]] = []
        size = len(work.message)
        for recipient, mailbox_id in plan:
            uid = next_uid[mailbox_id]
            next_uid[mailbox_id] += 1
            bits, keywords = fl.encode(recipient.flags)
            message_rows.append({
                "mailbox_id": mailbox_id, "uid": uid, "blob_id": work.blob_id,
                "size": size, "internal_date": work.envelope.received_at,
                "system_flags": bits, "keywords": fl.keywords_text(keywords),
                "modseq": modseqs[mailbox_id]})
            usage[recipient.account_id] += size
            stored.append((recipient.account_id, mailbox_id, uid))
        results[id(work)] = DeliveryResult(
            DeliveryReceipt(tuple(stored), ()),
            [MailboxChange(a, m, modseqs[m]) for a, m, _ in stored], size)
    if message_rows:
        await conn.execute(_INSERT_MESSAGES, message_rows)
        await conn.execute(_ADD_USAGE, [{"account": account, "delta": delta}
                                        for account, delta in sorted(usage.items())])
    await _queue(conn, [w for w, _ in live], results, now)
    out: list[DeliveryResult | Failed] = []
    for work, planned in zip(works, plans, strict=True):
        out.append(planned if isinstance(planned, Failed) else results[id(work)])
    return out


@dataclass
class _Usage:
    """An account's stored bytes (charged as the batch is planned) and its role."""

    used: int
    role: str


async def _account_state(session: AsyncSession, conn: AsyncConnection, account_ids: list[int],
                         names: list[str],
                         ) -> tuple[dict[int, _Usage], dict[tuple[int, str], int]]:
    """(account id -> its usage and role, (account id, mailbox name) -> mailbox id).

    One query for the whole batch (account, its mail state and the mailboxes
    the batch delivers into); accounts without mail state yet get it and their
    default folders here (first delivery), then one more query for those.
    Accounts that no longer exist are simply absent.
    """
    if not account_ids:
        return {}, {}
    rows = await conn.execute(_STATE, {"ids": account_ids, "names": names})
    state: dict[int, _Usage] = {}
    boxes: dict[tuple[int, str], int] = {}
    fresh: list[int] = []
    for account_id, role, used, name, mailbox_id in rows:
        if account_id not in state:
            state[account_id] = _Usage(int(used or 0), role)
            if used is None:
                fresh.append(account_id)
        if mailbox_id is not None:
            boxes[(account_id, name)] = mailbox_id
    if fresh:
        await q.ensure_accounts(session, fresh)  # one set of statements for them all
        fresh_rows = await conn.execute(_FRESH_BOXES, {"ids": fresh, "names": names})
        boxes.update({(account_id, name): mailbox_id
                      for account_id, name, mailbox_id in fresh_rows})
    return state, boxes


def _plan(work: DeliveryWork, accounts: dict[int, _Usage], boxes: dict[tuple[int, str], int],
          limit_for: Callable[[str], int | None]) -> list[tuple[LocalRecipient, int]] | Failed:
    """(recipient, mailbox id) to store; charges ``accounts`` usage as it goes."""
    size = len(work.message)
    by_account: dict[int, list[LocalRecipient]] = {}
    for recipient in work.local:
        by_account.setdefault(recipient.account_id, []).append(recipient)
    plan: list[tuple[LocalRecipient, int]] = []
    refused: list[RecipientOutcome] = []
    missing: list[int] = []
    for account_id, recipients in sorted(by_account.items()):
        if account_id not in accounts:
            missing.append(account_id)
            continue
        usage = accounts[account_id]
        needed = size * len(recipients)
        outcome = quota_outcome(usage.used, needed, limit_for(usage.role))
        if outcome is not RecipientOutcome.ACCEPTED:
            refused.append(outcome)
            continue
        usage.used += needed
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


async def _reserve_uids(conn: AsyncConnection,
                        counts: Counter[int]) -> tuple[dict[int, int], dict[int, int]]:
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
        rows = await conn.execute(_RESERVE_UIDS, {"ids": ids, "n": n})
        for mailbox_id, uidnext, modseq in rows:
            first[mailbox_id] = int(uidnext) - n
            modseqs[mailbox_id] = int(modseq)
    if len(first) != len(counts):
        raise MailboxNotFound("a mailbox vanished during delivery")
    return first, modseqs


async def _queue(conn: AsyncConnection, works: list[DeliveryWork],
                 results: dict[int, DeliveryResult], now: dt.datetime) -> None:
    rows = [(work, address) for work in works for address in work.remote]
    if not rows:
        return
    result = await conn.execute(_INSERT_QUEUE, [
        {"mail_from": work.envelope.mail_from, "recipient": address,
         "blob_id": work.blob_id, "created_at": now, "next_attempt_at": now,
         "attempts": 0, "state": "queued"} for work, address in rows])
    ids: dict[int, list[int]] = {}
    for (work, _), queue_id in zip(rows, result.scalars().all(), strict=True):
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
                 quotas_of: Callable[[Sequence[int]], Awaitable[dict[int, Quota]]]) -> None:
        self._envelope = envelope
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

