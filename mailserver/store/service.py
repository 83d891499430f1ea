"""MailStore: the protocol-independent mail store used by SMTP delivery and IMAP.

Plain async methods with typed arguments and results; domain errors from
``mailserver.store.model``.  Every change is one write transaction, and the
change feed is told only after that transaction committed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import Database, affected_rows
from mailserver.changes import ChangeFeed, MailboxChange
from mailserver.delivery import Envelope
from mailserver.store import bulk_reads, search
from mailserver.store import flags as fl
from mailserver.store import mailboxes as boxes
from mailserver.store import messages as msgs
from mailserver.store import queries as q
from mailserver.store.account_settings import SettingsStore
from mailserver.store.batcher import CommitBatcher
from mailserver.store.delivery import (
    DeliveryQueue,
    DeliveryResult,
    DeliveryWork,
    StoreDeliveryTransaction,
)
from mailserver.store.flag_batch import FlagDone, FlagWork
from mailserver.store.mailbox_counts import MailboxCounts
from mailserver.store.model import (
    AccountNotFound,
    AppendResult,
    Changes,
    CopyResult,
    FlagMode,
    MailboxInfo,
    MailboxNotFound,
    MailboxStatus,
    MessageMeta,
    MessageState,
    Quota,
    QuotaExceeded,
    Snapshot,
    StoredMessage,
    StoreError,
    StoreResult,
)
from mailserver.store.names import check_special_use, normalise
from mailserver.store.write_queue import (
    AppendDone,
    AppendWork,
    ExpungeDone,
    ExpungeWork,
    MailStateMissing,
    RecentDone,
    RecentWork,
    WriteDone,
    WriteQueue,
    WriteWork,
)

RCPT_QUOTA_SECONDS = 2.0
HASH_IN_THREAD = 256 * 1024  # hashing bigger bodies would stall the event loop

# (mailbox id, updated messages, their MODSEQ) after a committed STORE.
FlagListener = Callable[[int, list[MessageState], int], None]
# (mailbox id, expunged UIDs, the EXPUNGE's MODSEQ) after a committed EXPUNGE.
ExpungeListener = Callable[[int, list[int], int], None]
RCPT_QUOTA_CACHE_SIZE = 100_000


@dataclass(frozen=True)
class Filed:
    """Messages a user filed into Junk (``spam``) or out of it (``ham``)."""

    account_id: int
    into_junk: bool
    blob_ids: tuple[str, ...]


def _is_junk(mailbox: Any) -> bool:
    return mailbox.special_use == "\\Junk" or mailbox.name == "Junk"


class MailStore:
    """Mailboxes, messages, flags, UIDs, MODSEQs and quotas of one school (RFC 9051 2.3)."""

    def __init__(self, db: Database, quota_bytes: Mapping[str, int], feed: ChangeFeed, *,
                 group_commit: bool = True) -> None:
        self.db = db
        self.feed = feed
        # Told about messages filed into or out of Junk (spam training).
        self.filing_observers: list[Callable[[Filed], None]] = []
        # Signature, vacation and forwarding: read by the webmail and by delivery.
        self.settings = SettingsStore(db)
        # Per mailbox id: the UID up to which the search index is complete.
        self._indexed_up_to: dict[int, int] = {}
        self._counts = MailboxCounts()  # the webmail's folder list and page totals
        # Background indexing of a mailbox first shown (one at a time: a school's
        # first morning must not parse every mailbox at once).
        self._indexing: asyncio.Task[None] | None = None
        self._index_waiting: list[int] = []
        self._quota_bytes = dict(quota_bytes)
        # RCPT-time quota answers, briefly cached: that check is advisory (commit
        # re-checks in its transaction) and one read per RCPT halved throughput.
        self._rcpt_quota: dict[int, tuple[float, Quota]] = {}
        self._rcpt_quota_inflight: dict[int, asyncio.Future[dict[int, Quota]]] = {}
        self._quota_pending: tuple[list[int], asyncio.Future[dict[int, Quota]]] | None = None
        self._batcher = DeliveryQueue(db, self.limit_for, self._after_delivery,
                                      enabled=group_commit)
        # STORE, APPEND, EXPUNGE and \Recent claims of all sessions, group-committed.
        self._writes = WriteQueue(db, self.limit_for, self._after_write, enabled=group_commit)
        self._flag_listeners: list[FlagListener] = []
        self._expunge_listeners: list[ExpungeListener] = []

    @property
    def batcher(self) -> CommitBatcher[DeliveryWork, DeliveryResult]:
        return self._batcher

    @property
    def writes(self) -> CommitBatcher[WriteWork, WriteDone]:
        """The group commit of STORE / APPEND / EXPUNGE / \\Recent claims."""
        return self._writes

    def add_flag_listener(self, listener: FlagListener) -> None:
        """``listener(mailbox_id, updated, modseq)`` after every committed
        STORE that changed something (the IMAP service's shared mailbox
        states take the result without reading the store again)."""
        self._flag_listeners.append(listener)

    def add_expunge_listener(self, listener: ExpungeListener) -> None:
        """``listener(mailbox_id, expunged_uids, modseq)`` after every
        committed EXPUNGE that removed something (as ``add_flag_listener``)."""
        self._expunge_listeners.append(listener)

    def _after_write(self, done: WriteDone) -> None:
        if isinstance(done, FlagDone):
            result = done.result
            if result.updated:
                for listener in self._flag_listeners:
                    listener(done.work.mailbox_id, result.updated, result.highestmodseq)
                self.feed.publish(MailboxChange(done.account_id, done.work.mailbox_id,
                                                result.highestmodseq))
        elif isinstance(done, AppendDone):
            self._publish(done.account_id, (done.result.mailbox_id, done.modseq))
        elif isinstance(done, ExpungeDone) and done.expunged:
            for expunge_listener in self._expunge_listeners:
                expunge_listener(done.mailbox_id, done.expunged, done.modseq)
            self._publish(done.account_id, (done.mailbox_id, done.modseq))

    def limit_for(self, role: str) -> int | None:
        """The role's quota in bytes; None when unlimited (configured as 0)."""
        limit = self._quota_bytes.get(role, 0)
        return limit if limit > 0 else None

    # --- delivery (mailserver.delivery.DeliveryTarget) ---------------------
    def begin(self, envelope: Envelope) -> StoreDeliveryTransaction:
        return StoreDeliveryTransaction(envelope, self._batcher, self._quotas_for_rcpt,
                                        self._prepare_mail_state)

    async def _prepare_mail_state(self, account_ids: Sequence[int]) -> None:
        """Default mailboxes of accounts receiving their first mail."""
        async with self.db.write() as session:
            await q.ensure_accounts(session, account_ids)

    async def _quotas_for_rcpt(self, account_ids: Sequence[int]) -> dict[int, Quota]:
        """RCPT-time quota of each account: cached answers, one query for the rest.

        A class mail's RCPT asks for 30 accounts at once; parallel RCPTs for the
        same accounts share the reads in flight (they come in bursts).
        Accounts that do not exist raise AccountNotFound, as ``quota`` does.
        """
        now = time.monotonic()
        found: dict[int, Quota] = {}
        waiting: dict[int, asyncio.Future[dict[int, Quota]]] = {}
        missing: list[int] = []
        for account_id in account_ids:
            cached = self._rcpt_quota.get(account_id)
            if cached is not None and cached[0] > now:
                found[account_id] = cached[1]
            elif account_id in self._rcpt_quota_inflight:
                waiting[account_id] = self._rcpt_quota_inflight[account_id]
            elif account_id not in missing:
                missing.append(account_id)
        if missing:
            lookup = self._quota_lookup_for(missing)
            for account_id in missing:
                self._rcpt_quota_inflight[account_id] = lookup
                waiting[account_id] = lookup
        for account_id, pending in waiting.items():
            # shield: one RCPT going away must not cancel a read others wait for.
            quotas = await asyncio.shield(pending)
            if account_id not in quotas:
                raise AccountNotFound(f"no account {account_id}")
            found[account_id] = quotas[account_id]
        return found

    def _quota_lookup_for(self, account_ids: list[int]) -> asyncio.Future[dict[int, Quota]]:
        """The read that will answer ``account_ids``: one per turn of the event loop.

        Deliveries started together (a digest run's chunk, parallel SMTP
        sessions) each ask for their own recipient; the misses of one turn
        are read with one query on the next instead of one query each.
        """
        pending = self._quota_pending
        if pending is None:
            loop = asyncio.get_running_loop()
            pending = self._quota_pending = ([], loop.create_future())
            loop.call_soon(self._start_quota_read)
        pending[0].extend(account_ids)
        return pending[1]

    def _start_quota_read(self) -> None:
        pending, self._quota_pending = self._quota_pending, None
        assert pending is not None
        ids, answer = pending
        read = asyncio.ensure_future(self._read_quotas(ids))

        def done(read: asyncio.Future[dict[int, Quota]]) -> None:
            if answer.cancelled():
                pass
            elif read.cancelled():
                answer.cancel()
            elif (error := read.exception()) is not None:
                answer.set_exception(error)
            else:
                answer.set_result(read.result())
            self._settle_quotas(ids, answer)

        read.add_done_callback(done)

    async def _read_quotas(self, account_ids: list[int]) -> dict[int, Quota]:
        async with self.db.read() as session:
            rows = await q.usages_and_roles(session, account_ids)
        return {account_id: Quota(used, self.limit_for(role))
                for account_id, (used, role) in rows.items()}

    def _settle_quotas(self, account_ids: list[int],
                       lookup: asyncio.Future[dict[int, Quota]]) -> None:
        for account_id in account_ids:
            if self._rcpt_quota_inflight.get(account_id) is lookup:
                del self._rcpt_quota_inflight[account_id]
        if lookup.cancelled() or lookup.exception() is not None:
            return
        if len(self._rcpt_quota) > RCPT_QUOTA_CACHE_SIZE:
            self._rcpt_quota.clear()
        expires = time.monotonic() + RCPT_QUOTA_SECONDS
        for account_id, quota in lookup.result().items():
            self._rcpt_quota[account_id] = (expires, quota)

    def _after_delivery(self, result: DeliveryResult) -> None:
        for change in result.changes:
            self.feed.publish(change)
        size = result.size
        for account_id, _, _ in result.receipt.stored:
            cached = self._rcpt_quota.get(account_id)
            if cached is not None:
                expires, quota = cached
                self._rcpt_quota[account_id] = (expires, Quota(quota.used + size, quota.limit))

    # --- transactions -------------------------------------------------------
    @asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[AsyncSession]:
        """A read transaction whose statements all see one snapshot.

        SQLite WAL readers already do; PostgreSQL needs REPEATABLE READ, else
        the mailbox row and its messages could come from different commits.
        """
        async with self.db.read() as session:
            if not self.db.is_sqlite:
                await session.connection(
                    execution_options={"isolation_level": "REPEATABLE READ"})
            yield session

    def _tell_filed(self, source: Any, dest: Any, rows: Sequence[Any]) -> None:
        """Messages moved or copied into Junk, or out of it (not into Trash): tell
        the observers (spam training, ``mailserver.spam_training``)."""
        if not self.filing_observers:
            return
        from_junk, to_junk = _is_junk(source), _is_junk(dest)
        if from_junk == to_junk or (from_junk and dest.special_use == "\\Trash"):
            return
        filed = Filed(dest.account_id, to_junk, tuple(r.blob_id for r in rows))
        for observer in self.filing_observers:
            observer(filed)

    def _publish(self, account_id: int, *boxes_: tuple[int, int]) -> None:
        self._rcpt_quota.pop(account_id, None)  # usage may have changed
        for mailbox_id, modseq in boxes_:
            self.feed.publish(MailboxChange(account_id, mailbox_id, modseq))

    def announce(self, account_id: int, mailbox_id: int, modseq: int) -> None:
        """Tell IMAP sessions of a change made outside these methods (retention)."""
        self._publish(account_id, (mailbox_id, modseq))

    # --- mailboxes ------------------------------------------------------------
    async def ensure_default_mailboxes(self, account_id: int) -> bool:
        """INBOX, Sent, Drafts, Trash, Junk, Archive (RFC 6154) on first use; True if made."""
        if await bulk_reads.has_mail_state(self.db, account_id):  # every login asks
            return False
        async with self.db.write() as session:
            return await q.ensure_account(session, account_id)

    async def mailbox_infos(self, account_id: int) -> list[MailboxInfo]:
        """Every mailbox by name, without message counts (LIST, RFC 9051 6.3.9)."""
        return await bulk_reads.mailbox_infos(self.db, account_id)

    async def list_mailboxes(self, account_id: int) -> list[MailboxStatus]:
        async with self.db.read() as session:
            return await boxes.statuses(session, account_id)

    async def mailbox_status(self, account_id: int, name: str) -> MailboxStatus:
        """STATUS (RFC 9051 6.3.11)."""
        async with self._snapshot() as session:
            row = await boxes.resolve(session, account_id, normalise(name))
            return (await boxes.statuses(session, account_id, row.id))[0]

    async def create_mailbox(self, account_id: int, name: str,
                             special_use: str | None = None) -> MailboxInfo:
        """CREATE (RFC 9051 6.3.3; USE attribute RFC 6154 3); a trailing '/' is allowed."""
        name = normalise(name[:-1] if name.endswith("/") else name)
        special_use = check_special_use(special_use)
        await self.ensure_default_mailboxes(account_id)
        async with self.db.write() as session:
            return await boxes.create(session, account_id, name, special_use)

    async def delete_mailbox(self, account_id: int, name: str) -> None:
        """DELETE (RFC 9051 6.3.4); refuses INBOX and mailboxes with inferiors."""
        async with self.db.write() as session:
            info = await boxes.delete_mailbox(session, account_id, normalise(name))
        self._rcpt_quota.pop(account_id, None)
        self.feed.publish(MailboxChange(account_id, info.id, info.highestmodseq, deleted=True))

    async def rename_mailbox(self, account_id: int, old: str, new: str) -> list[MailboxInfo]:
        """RENAME (RFC 9051 6.3.6; INBOX per RFC 3501 6.3.5)."""
        async with self.db.write() as session:
            renamed = await boxes.rename(session, account_id, normalise(old), normalise(new))
            inbox = await q.mailbox_by_name(session, account_id, "INBOX")
        changes = [(info.id, info.highestmodseq) for info in renamed]
        if normalise(old) == "INBOX" and inbox is not None:
            changes.append((inbox.id, inbox.highestmodseq))
        self._publish(account_id, *changes)
        return renamed

    async def set_subscribed(self, account_id: int, name: str, subscribed: bool) -> None:
        """SUBSCRIBE / UNSUBSCRIBE (RFC 9051 6.3.7, 6.3.8) of an existing mailbox."""
        async with self.db.write() as session:
            await boxes.set_subscribed(session, account_id, normalise(name), subscribed)

    async def orphan_subscriptions(self, account_id: int) -> list[str]:
        """Subscribed names without a mailbox (LSUB / LIST SUBSCRIBED, RFC
        3501 6.3.9, RFC 5258 3)."""
        async with self.db.read() as session:
            return await boxes.orphan_subscriptions(session, account_id)

    async def recent_count(self, mailbox_id: int) -> int:
        """STATUS RECENT (RFC 3501 6.3.10): messages not yet recent to a session."""
        async with self.db.read() as session:
            return await boxes.recent_count(session, mailbox_id)

    async def claim_recent(self, mailbox_id: int, up_to: int, *, claim: bool = True
                           ) -> int | None:
        """IMAP \\Recent (RFC 3501 2.3.2): the first UID not yet recent to an
        earlier session; with ``claim`` the UIDs below ``up_to`` become this
        caller's (one conditional UPDATE, so two sessions never both get one).
        EXAMINE only looks (RFC 3501 6.3.2). None: the mailbox is gone."""
        first = await bulk_reads.recent_uid(self.db, mailbox_id)
        if first is None or not claim or first >= up_to:
            return first  # nothing to claim: no write transaction to queue for
        done = await self._writes.submit(RecentWork(mailbox_id, up_to))
        assert isinstance(done, RecentDone)
        return done.first

    async def select_snapshot(self, account_id: int, name: str) -> Snapshot:
        """SELECT/EXAMINE (RFC 9051 6.3.2): the mailbox and all (uid, flags, modseq)."""
        async with self._snapshot() as session:
            row = await boxes.resolve(session, account_id, normalise(name))
            return Snapshot(q.mailbox_info(row), await msgs.snapshot(session, row.id))

    # --- messages ---------------------------------------------------------------
    async def fetch_messages(self, mailbox_id: int, uids: Sequence[int]) -> list[MessageMeta]:
        async with self.db.read() as session:
            return await msgs.fetch(session, mailbox_id, uids)

    async def read_blob(self, blob_id: str) -> bytes:
        async with self.db.read() as session:
            data = await session.scalar(select(q.blobs.c.data).where(q.blobs.c.id == blob_id))
        if data is None:
            raise StoreError(f"no blob {blob_id}")
        return bytes(data)

    async def append(self, account_id: int, mailbox: str, message: bytes,
                     flags: Iterable[str] = (),
                     internal_date: dt.datetime | None = None) -> AppendResult:
        """APPEND (RFC 9051 6.3.12) with APPENDUID data (RFC 4315) and quota (RFC 9208)."""
        return (await self.append_claiming(account_id, mailbox, message, flags,
                                           internal_date))[0]

    async def append_claiming(self, account_id: int, mailbox: str, message: bytes,
                              flags: Iterable[str] = (),
                              internal_date: dt.datetime | None = None, *,
                              claim_recent_in: int | None = None,
                              ) -> tuple[AppendResult, int | None]:
        """``append``; when the message lands in mailbox ``claim_recent_in``
        (an IMAP4rev1 session's selected one), the same transaction claims
        the UIDs below the new message's and it as \\Recent (RFC 3501 2.3.2,
        ``claim_recent``) and the first UID of that claim comes back (None:
        no claim)."""
        bits, keywords = fl.encode(flags)
        if len(message) > HASH_IN_THREAD:
            blob_id = await asyncio.to_thread(lambda: hashlib.sha256(message).hexdigest())
        else:
            blob_id = hashlib.sha256(message).hexdigest()
        work = AppendWork(account_id, normalise(mailbox), message, blob_id, bits,
                          fl.keywords_text(keywords), internal_date or msgs.now(),
                          claim_recent_in)
        try:
            done = await self._writes.submit(work)
        except MailStateMissing:  # the account's first message: make its mailboxes
            await self.ensure_default_mailboxes(account_id)
            done = await self._writes.submit(work)
        assert isinstance(done, AppendDone)
        return done.result, done.recent_first

    def _check_quota(self, used: int, size: int, role: str) -> None:
        limit = self.limit_for(role)
        if limit is not None and used + size > limit:
            raise QuotaExceeded(f"quota of {limit} bytes exceeded", permanent=size > limit)

    async def store_flags(self, mailbox_id: int, uids: Sequence[int], mode: FlagMode,
                          flags: Iterable[str],
                          unchanged_since: int | None = None) -> StoreResult:
        """STORE (RFC 9051 6.4.6) with UNCHANGEDSINCE (RFC 7162 3.2); no-ops keep MODSEQ."""
        given = fl.encode(flags)  # InvalidFlag before anything is queued
        done = await self._writes.submit(FlagWork(mailbox_id, tuple(uids), mode, given,
                                                  unchanged_since))
        assert isinstance(done, FlagDone)
        return done.result

    async def copy(self, mailbox_id: int, uids: Sequence[int],
                   dest_mailbox_id: int) -> CopyResult:
        """COPY (RFC 9051 6.4.7) with COPYUID data (RFC 4315 3); counts against quota."""
        async with self.db.write() as session:
            source = await q.mailbox_by_id(session, mailbox_id)
            rows = await msgs.copy_rows(session, mailbox_id, uids)
            dest = await q.lock_mailbox(session, dest_mailbox_id)
            used, role = await q.usage_and_role(session, dest.account_id)
            self._check_quota(used, sum(r.size for r in rows), role)
            pairs = await msgs.insert_copies(session, dest, rows)
            after = await q.mailbox_by_id(session, dest.id)
        if pairs:
            self._publish(dest.account_id, (dest.id, after.highestmodseq))
            self._tell_filed(source, dest, rows)
        return CopyResult(dest.uidvalidity, pairs)

    async def move(self, mailbox_id: int, uids: Sequence[int],
                   dest_mailbox_id: int) -> CopyResult:
        """MOVE (RFC 6851 3.1): copy and expunge in one transaction."""
        async with self.db.write() as session:
            source = await q.lock_mailbox(session, mailbox_id)
            rows = await msgs.copy_rows(session, mailbox_id, uids)
            dest = await q.lock_mailbox(session, dest_mailbox_id)
            if dest.account_id != source.account_id:
                used, role = await q.usage_and_role(session, dest.account_id)
                self._check_quota(used, sum(r.size for r in rows), role)
            pairs = await msgs.insert_copies(session, dest, rows)
            source_modseq = await msgs.remove(session, source, rows) if rows else 0
            after = await q.mailbox_by_id(session, dest.id)
        if pairs:
            self._publish(source.account_id, (source.id, source_modseq))
            self._publish(dest.account_id, (dest.id, after.highestmodseq))
            self._tell_filed(source, dest, rows)
        return CopyResult(dest.uidvalidity, pairs)

    async def expunge(self, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        """EXPUNGE / UID EXPUNGE (RFC 9051 6.4.3, 6.4.9): removes \\Deleted messages."""
        done = await self._writes.submit(ExpungeWork(
            mailbox_id, None if uids is None else tuple(uids)))
        assert isinstance(done, ExpungeDone)
        return done.expunged

    async def changes_since(self, mailbox_id: int, modseq: int) -> Changes:
        """Changed and vanished UIDs after ``modseq`` (RFC 7162 3.1.4.1, 3.2.10)."""
        async with self._snapshot() as session:
            return await msgs.changes_since(session, mailbox_id, modseq)

    async def quota(self, account_id: int) -> Quota:
        """STORAGE usage and limit (RFC 9208 5.1), exact (a counter kept in every write)."""
        async with self.db.read() as session:
            used, role = await q.usage_and_role(session, account_id)
        return Quota(used, self.limit_for(role))

    async def latest(self, account_id: int, mailbox: str, offset: int,
                     limit: int) -> search.Found:
        """One page of a mailbox, newest first (the webmail's folder page)."""
        return await search.latest(self.db, self._counts, account_id, mailbox, offset, limit)

    async def unseen_counts(self, account_id: int) -> list[tuple[str, int]]:
        """(name, unseen) of every mailbox: the webmail's folder list."""
        return await search.unseen_counts(self.db, self._counts, account_id)

    def index_soon(self, mailbox_id: int) -> None:
        """Build the search index of a mailbox in the background if it was never
        searched since the start (so the first search need not wait for it)."""
        if mailbox_id in self._indexed_up_to or mailbox_id in self._index_waiting:
            return
        self._index_waiting.append(mailbox_id)
        if self._indexing is None or self._indexing.done():
            self._indexing = asyncio.ensure_future(self._index_waiting_mailboxes())

    async def _index_waiting_mailboxes(self) -> None:
        while self._index_waiting:
            mailbox_id = self._index_waiting[0]
            try:
                await search.index_mailbox(self.db, mailbox_id, self._indexed_up_to)
            except Exception:  # the next search indexes what is missing
                logging.getLogger("schulhof.store").exception(
                    "event=search_index_failed mailbox=%s", mailbox_id)
            finally:
                self._index_waiting.remove(mailbox_id)

    async def conversation(self, account_id: int, root: str,
                           mailbox_ids: Sequence[int]) -> list[tuple[str, int, str]]:
        """The account's messages of one conversation (``search.conversation``),
        after indexing the new mail of ``mailbox_ids`` (the reader's folder and
        Sent: once indexed, only mail that came in since is read)."""
        for mailbox_id in mailbox_ids:
            await search.index_mailbox(self.db, mailbox_id, self._indexed_up_to)
        return await search.conversation(self.db, account_id, root)

    async def search(self, account_id: int, mailbox: str, query: search.SearchQuery,
                     offset: int = 0, limit: int = 50) -> search.Found:
        """Messages matching ``query`` (sender, recipients, subject, body, dates)."""
        return await search.search(self.db, account_id, mailbox, query, offset, limit,
                                   self._indexed_up_to, self._counts)

    async def read_mailbox(self, account_id: int, mailbox: str = "INBOX") -> list[StoredMessage]:
        """Every message with its body, in UID order: for tests and simple readers."""
        async with self._snapshot() as session:
            row = await q.mailbox_by_name(session, account_id, normalise(mailbox))
            if row is None:
                raise MailboxNotFound(f"no mailbox {mailbox!r}")
            m, b = q.messages, q.blobs
            result = await session.execute(
                select(m.c.uid, m.c.system_flags, m.c.keywords, b.c.data)
                .join(b, b.c.id == m.c.blob_id)
                .where(m.c.mailbox_id == row.id).order_by(m.c.uid))
            return [StoredMessage(uid, fl.decode(bits, kw), bytes(data))
                    for uid, bits, kw, data in result]

    async def collect_garbage(self) -> int:
        """Delete bodies no message and no queue row refers to; returns how many."""
        b = q.blobs
        async with self.db.write() as session:
            result = await session.execute(delete(b).where(
                ~exists().where(q.messages.c.blob_id == b.c.id),
                ~exists().where(q.outbound.c.blob_id == b.c.id)))
            return affected_rows(result)
