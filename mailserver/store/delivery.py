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

from sqlalchemy import BigInteger, bindparam, case, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

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


async def apply_deliveries(session: AsyncSession, works: Sequence[DeliveryWork],
                           limit_for: Callable[[str], int | None],
                           ) -> list[DeliveryResult | Failed]:
    """Write a batch of deliveries inside ``session`` with a constant number of statements.

    Per batch, not per message: one query each for account state, usage and
    mailboxes, one multi-row insert each for blobs, messages and queue rows, one
    ``UPDATE ... RETURNING`` reserving the UIDs of every touched mailbox.
    Refusals (quota, missing account) are returned as ``Failed`` and nothing
    of a refused delivery is written.
    """
    account_ids = sorted({r.account_id for w in works for r in w.local})
    accounts = await _account_state(session, account_ids)
    boxes = await _mailboxes(session, account_ids)
    plans: list[list[tuple[LocalRecipient, int]] | Failed] = []
    for work in works:
        plans.append(_plan(work, accounts, boxes, limit_for))
    live = [(w, p) for w, p in zip(works, plans, strict=True) if not isinstance(p, Failed)]
    if not live:
        return [p for p in plans if isinstance(p, Failed)]

    blob_rows = {w.blob_id: w.message for w, _ in live}
    await session.execute(q.insert_ignoring_conflict(session, q.blobs), [
        {"id": blob_id, "size": len(data), "data": data, "created_at": msgs.now()}
        for blob_id, data in blob_rows.items()])

    counts = Counter(mailbox_id for _, plan in live for _, mailbox_id in plan)
    next_uid, modseqs = await _reserve_uids(session, counts)
    message_rows: list[dict[str, object]] = []
    results: dict[int, DeliveryResult] = {}
    usage: Counter[int] = Counter()
    for work, plan in live:
        stored: list[tuple[int, int, int]] = []
        for recipient, mailbox_id in plan:
            uid = next_uid[mailbox_id]
            next_uid[mailbox_id] += 1
            bits, keywords = fl.encode(recipient.flags)
            message_rows.append({
                "mailbox_id": mailbox_id, "uid": uid, "blob_id": work.blob_id,
                "size": len(work.message), "internal_date": work.envelope.received_at,
                "system_flags": bits, "keywords": fl.keywords_text(keywords),
                "modseq": modseqs[mailbox_id]})
            usage[recipient.account_id] += len(work.message)
            stored.append((recipient.account_id, mailbox_id, uid))
        results[id(work)] = DeliveryResult(
            DeliveryReceipt(tuple(stored), ()),
            [MailboxChange(a, m, modseqs[m]) for a, m, _ in stored], len(work.message))
    if message_rows:
        await session.execute(insert(q.messages), message_rows)
        a = q.mail_accounts
        await session.execute(
            update(a).where(a.c.account_id == bindparam("account"))
            .values(used_bytes=a.c.used_bytes + bindparam("delta")),
            [{"account": account, "delta": delta} for account, delta in sorted(usage.items())])
    await _queue(session, [w for w, _ in live], results)
    out: list[DeliveryResult | Failed] = []
    for work, plan in zip(works, plans, strict=True):
        out.append(plan if isinstance(plan, Failed) else results[id(work)])
    return out


async def _account_state(session: AsyncSession, account_ids: list[int]) -> dict[int, list]:
    """account id -> [used bytes, role]; creates missing mail state and default folders."""
    if not account_ids:
        return {}
    known = set((await session.scalars(select(q.mail_accounts.c.account_id).where(
        q.mail_accounts.c.account_id.in_(account_ids)))).all())
    state: dict[int, list] = {}
    rows = await session.execute(
        select(q.accounts_t.c.id, q.accounts_t.c.role).where(q.accounts_t.c.id.in_(account_ids)))
    for account_id, role in rows:
        state[account_id] = [0, role]
        if account_id not in known:
            await q.ensure_account(session, account_id)
    usage = await session.execute(
        select(q.mail_accounts.c.account_id, q.mail_accounts.c.used_bytes)
        .where(q.mail_accounts.c.account_id.in_(list(state))))
    for account_id, used in usage:
        state[account_id][0] = int(used)
    return state


async def _mailboxes(session: AsyncSession, account_ids: list[int]) -> dict[tuple[int, str], int]:
    if not account_ids:
        return {}
    mb = q.mailboxes
    rows = await session.execute(select(mb.c.account_id, mb.c.name, mb.c.id)
                                 .where(mb.c.account_id.in_(account_ids)))
    return {(account_id, name): mailbox_id for account_id, name, mailbox_id in rows}


def _plan(work: DeliveryWork, accounts: dict[int, list], boxes: dict[tuple[int, str], int],
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
        used, role = accounts[account_id]
        needed = size * len(recipients)
        outcome = quota_outcome(used, needed, limit_for(role))
        if outcome is not RecipientOutcome.ACCEPTED:
            refused.append(outcome)
            continue
        accounts[account_id][0] += needed
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


async def _reserve_uids(session: AsyncSession,
                        counts: Counter[int]) -> tuple[dict[int, int], dict[int, int]]:
    """One UPDATE ... RETURNING for all mailboxes: (first uid, new modseq) per mailbox.

    Messages delivered into one mailbox by one batch share a MODSEQ: they
    appeared in the same commit (RFC 7162 3.1.1 only needs it to increase).
    """
    if not counts:
        return {}, {}
    mb = q.mailboxes
    ids = sorted(counts)
    increment = case({i: counts[i] for i in ids}, value=mb.c.id) if len(ids) > 1 \
        else literal(counts[ids[0]], BigInteger)
    rows = await session.execute(
        update(mb).where(mb.c.id.in_(ids))
        .values(uidnext=mb.c.uidnext + increment, highestmodseq=mb.c.highestmodseq + 1)
        .returning(mb.c.id, mb.c.uidnext, mb.c.highestmodseq))
    first: dict[int, int] = {}
    modseqs: dict[int, int] = {}
    for mailbox_id, uidnext, modseq in rows:
        first[mailbox_id] = int(uidnext) - counts[mailbox_id]
        modseqs[mailbox_id] = int(modseq)
    if len(first) != len(ids):
        raise MailboxNotFound("a mailbox vanished during delivery")
    return first, modseqs


async def _queue(session: AsyncSession, works: list[DeliveryWork],
                 results: dict[int, DeliveryResult]) -> None:
    rows = [(work, address) for work in works for address in work.remote]
    if not rows:
        return
    now = msgs.now()
    result = await session.execute(
        insert(q.outbound).returning(q.outbound.c.id, sort_by_parameter_order=True), [
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
                 quota_of: Callable[[int], Awaitable[Quota]]) -> None:
        self._envelope = envelope
        self._batcher = batcher
        self._quota_of = quota_of
        self._local: dict[tuple[int, str], LocalRecipient] = {}
        self._remote: list[str] = []
        self._finished = False

    async def add_local(self, recipient: LocalRecipient,
                        size_hint: int = 0) -> RecipientOutcome:
        self._check_open()
        recipient = LocalRecipient(recipient.account_id, normalise(recipient.mailbox),
                                   recipient.flags)
        key = (recipient.account_id, recipient.mailbox)
        if key in self._local:  # the same mailbox twice (alias + address): one copy
            return RecipientOutcome.ACCEPTED
        quota = await self._quota_of(recipient.account_id)
        outcome = quota_outcome(quota.used, size_hint, quota.limit)
        if outcome is RecipientOutcome.ACCEPTED:
            self._local[key] = recipient
        return outcome

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
        log.info("event=delivered size=%d local=%d queued=%d", len(message),
                 len(result.receipt.stored), len(result.receipt.queued_ids))
        return result.receipt

    async def abort(self) -> None:
        self._finished = True
        self._local.clear()
        self._remote.clear()

    def _check_open(self) -> None:
        if self._finished:
            raise StoreError("delivery transaction already committed or aborted")
