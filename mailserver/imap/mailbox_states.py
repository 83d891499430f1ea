"""The server-wide state of open mailboxes: every message's UID, flags and
MODSEQ, kept current by MODSEQ deltas (RFC 7162 3.1, 3.2.10) and shared by
all sessions of one IMAP service.

Without it every SELECT, state-only SEARCH and ``FETCH 1:* (FLAGS)`` read
the whole mailbox, and every session polled the database after every other
session's STORE.  With it:

- a refresh is one statement (changes after the cached MODSEQ, expunges
  after it and the mailbox row, ``bulk_reads.mailbox_delta``) and is shared:
  a caller waits for a refresh that *began after it asked* (so it sees every
  commit that finished before its command), and all callers that ask while
  one runs share the next one;
- a session catching up (EXISTS, EXPUNGE, FETCH FLAGS) reads the change log
  here, not the database, when the change feed says the cache is recent
  enough;
- this server's own STOREs and EXPUNGEs are applied from their results when
  they follow the cached MODSEQ directly (MODSEQs are unique per mailbox, so "cached is
  m-1 and the STORE made m" means nothing was missed).

The UID array is never changed in place (a change makes a new one), so
selected views share it instead of holding a copy each: 10,000 UIDs are
40 KiB per session otherwise.  Bounded: least recently used mailboxes are
dropped beyond ``max_messages`` in total (a cached FETCH record counting as
ten messages); a dropped or never loaded mailbox is simply read again (or
the caller falls back to the store).
"""

from __future__ import annotations

import asyncio
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from directory.db import Database
from mailserver.store import bulk_reads
from mailserver.store.model import Changes, MessageMeta, MessageState
from mailserver.store.names import normalise

# Change-log entries kept per mailbox; a session further behind reads the store.
LOG_ENTRIES = 20_000
# Cached (blob id, size, date) per mailbox (about 350 octets each).
META_ENTRIES = 50_000


@dataclass(frozen=True)
class MailboxCounters:
    """The mailbox row as of the state's MODSEQ (RFC 9051 6.3.2 data)."""

    account_id: int
    name: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int


class MailboxState:
    """UIDs (shared, immutable array), flags and MODSEQs of one mailbox, with
    a bounded log of (modseq, uid) changes and expunges after ``floor``."""

    def __init__(self, mailbox_id: int) -> None:
        self.mailbox_id = mailbox_id
        self.loaded = False
        self.counters: MailboxCounters | None = None
        self.modseq = 0  # every change up to here is reflected
        self.uids: array[int] = array("I")
        self.modseqs: array[int] = array("Q")
        self.flags: list[frozenset[str]] = []
        self.floor = 0  # the logs are complete for changes after this MODSEQ
        self._changed: list[tuple[int, int]] = []
        self._vanished: list[tuple[int, int]] = []
        # uid -> (blob id, size, internal date): never change for a message.
        self.meta: dict[int, tuple[str, int, Any]] = {}
        # The next refresh's waiters, one future each: a waiter that goes away
        # cancels only its own (a shared future would need a shield, one more
        # turn of a busy event loop before every waiter resumes).
        self._pending: list[asyncio.Future[bool]] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._unseen: tuple[int, int] | None = None  # (modseq, count)

    def __len__(self) -> int:
        return len(self.uids)

    # --- reading the store ----------------------------------------------------

    async def refresh(self, db: Database) -> bool:
        """Bring the state up to a snapshot taken after this call began
        (shared with concurrent callers). False: the mailbox is gone.

        Callers that arrive while a refresh runs wait for the next one,
        all woken in the same event-loop turn (a lock would hand over to one
        waiter per turn)."""
        if self.loaded and self._runner is None and db.reads_inline:
            # SQLite: the delta is a small read on this thread that completes
            # without suspending (nobody can refresh meanwhile), so the
            # caller reads it itself: no task, no future, no event-loop turn.
            self._apply_delta(await bulk_reads.mailbox_delta(db, self.mailbox_id, self.modseq))
            return self.counters is not None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        if self._pending is None:
            self._pending = []
            if self._runner is None:
                self._runner = loop.create_task(self._run(db))
        self._pending.append(future)
        return await future

    async def _run(self, db: Database) -> None:
        try:
            while self._pending is not None:
                waiters, self._pending = self._pending, None
                try:
                    delta = await bulk_reads.mailbox_delta(
                        db, self.mailbox_id, self.modseq if self.loaded else None)
                    self._apply_delta(delta)
                except Exception as error:  # every waiter of this round gets it
                    for future in waiters:
                        if not future.done():
                            future.set_exception(error)
                            future.exception()  # retrieved: the waiter may have gone
                else:
                    for future in waiters:
                        if not future.done():
                            future.set_result(self.counters is not None)
        finally:
            self._runner = None

    def _apply_delta(self, delta: bulk_reads.MailboxDelta) -> None:
        row = delta.mailbox
        if row is None:
            self.counters = None
            return
        if not self.loaded:
            self.uids = array("I", (uid for uid, _, _ in delta.changed))
            self.modseqs = array("Q", (modseq for _, _, modseq in delta.changed))
            self.flags = [flags for _, flags, _ in delta.changed]
            self.loaded = True
            self.modseq = self.floor = row.highestmodseq
        elif row.highestmodseq > self.modseq:
            # Only what is newer than the cached MODSEQ: a STORE applied
            # meanwhile from its own result is already in (see apply_store).
            base = self.modseq
            if delta.vanished:
                self._remove(uid for uid, _ in delta.vanished)
                self._vanished = sorted(self._vanished + [(modseq, uid) for uid, modseq
                                                          in delta.vanished
                                                          if modseq > base])
            self._merge([c for c in delta.changed if c[2] > base])
            self.modseq = row.highestmodseq
            self._trim()
        else:
            return
        self.counters = MailboxCounters(row.account_id, row.name, row.uidvalidity,
                                        row.uidnext, row.highestmodseq)

    # --- changing the state ---------------------------------------------------

    def _remove(self, uids: Iterable[int]) -> None:
        gone = {uid for uid in uids if self.index(uid) is not None}
        if not gone:
            return
        for uid in gone:
            self.meta.pop(uid, None)
        keep = [i for i, uid in enumerate(self.uids) if uid not in gone]
        self.uids = array("I", (self.uids[i] for i in keep))
        self.modseqs = array("Q", (self.modseqs[i] for i in keep))
        self.flags = [self.flags[i] for i in keep]

    def _merge(self, changed: list[tuple[int, frozenset[str], int]]) -> None:
        """Flag changes in place; new UIDs (always above the known ones,
        RFC 9051 2.3.1.1) appended to a new array."""
        added: list[tuple[int, frozenset[str], int]] = []
        for uid, flags, modseq in changed:
            index = self.index(uid)
            if index is None:
                added.append((uid, flags, modseq))
            else:
                self.flags[index] = flags
                self.modseqs[index] = modseq
        if added:
            uids = array("I", self.uids)
            for uid, flags, modseq in added:
                at = bisect_left(uids, uid)
                uids.insert(at, uid)
                self.modseqs.insert(at, modseq)
                self.flags.insert(at, flags)
            self.uids = uids
        log = sorted((modseq, uid) for uid, _, modseq in changed)
        if log and self._changed and log[0] < self._changed[-1]:
            self._changed = sorted(self._changed + log)
        else:
            self._changed.extend(log)

    def _trim(self) -> None:
        for log in (self._changed, self._vanished):
            if len(log) > LOG_ENTRIES:
                # Cut at a MODSEQ boundary: the log stays complete after floor.
                cut = log[len(log) - LOG_ENTRIES][0]
                self.floor = max(self.floor, cut)
                del log[:bisect_right(log, (cut, 1 << 62))]

    def apply_store(self, updated: list[MessageState], modseq: int) -> bool:
        """This server's committed STORE (all ``updated`` share ``modseq``):
        applied only when it directly follows the cached state."""
        if not self.loaded or self.counters is None or modseq != self.modseq + 1:
            return False
        for message in updated:
            index = self.index(message.uid)
            if index is not None:
                self.flags[index] = frozenset(message.flags)
                self.modseqs[index] = message.modseq
            self._changed.append((message.modseq, message.uid))
        self.modseq = modseq
        c = self.counters
        self.counters = MailboxCounters(c.account_id, c.name, c.uidvalidity, c.uidnext, modseq)
        self._trim()
        return True

    def apply_expunge(self, uids: list[int], modseq: int) -> bool:
        """This server's committed EXPUNGE of ``uids`` at ``modseq``
        (RFC 7162 3.2.10: their VANISHED records): applied only when it
        directly follows the cached state."""
        if not self.loaded or self.counters is None or modseq != self.modseq + 1:
            return False
        self._remove(uids)
        self._vanished.extend((modseq, uid) for uid in sorted(uids))
        self.modseq = modseq
        c = self.counters
        self.counters = MailboxCounters(c.account_id, c.name, c.uidvalidity, c.uidnext, modseq)
        self._trim()
        return True

    # --- reading the state ----------------------------------------------------

    def index(self, uid: int) -> int | None:
        at = bisect_left(self.uids, uid)
        if at < len(self.uids) and self.uids[at] == uid:
            return at
        return None

    async def metas(self, db: Database, uids: list[int]) -> list[MessageMeta]:
        """FETCH records of those ``uids`` that the state holds, in UID
        order: flags and MODSEQ from the state, the immutable rest from
        ``meta`` (missing ones read in one statement).  No await after the
        read, so the records are one consistent state."""
        missing = [uid for uid in uids if uid not in self.meta]
        if missing:
            if len(self.meta) + len(missing) > META_ENTRIES:
                self.meta.clear()
            for found in await bulk_reads.fetch_metas(db, self.mailbox_id, missing):
                self.meta[found.uid] = (found.blob_id, found.size, found.internal_date)
        out: list[MessageMeta] = []
        for uid in uids:
            index = self.index(uid)
            meta = self.meta.get(uid)
            if index is None or meta is None:
                continue  # expunged
            out.append(MessageMeta(uid, self.flags[index], meta[2], meta[1],
                                   self.modseqs[index], meta[0]))
        return out

    def unseen_count(self) -> int:
        """Messages without ``\\Seen`` (STATUS UNSEEN), counted once per MODSEQ."""
        if self._unseen is None or self._unseen[0] != self.modseq:
            unseen = sum(1 for flags in self.flags if "\\Seen" not in flags)
            self._unseen = (self.modseq, unseen)
        return self._unseen[1]

    def changes_since(self, modseq: int) -> Changes | None:
        """What ``MailStore.changes_since`` would answer at ``self.modseq``;
        None when the logs do not reach back to ``modseq``."""
        if modseq < self.floor or self.counters is None:
            return None
        start = bisect_right(self._changed, (modseq, 1 << 62))
        uids = sorted({uid for _, uid in self._changed[start:]})
        changed = []
        for uid in uids:
            index = self.index(uid)
            if index is not None and self.modseqs[index] > modseq:
                changed.append(MessageState(uid, self.flags[index], self.modseqs[index]))
        start = bisect_right(self._vanished, (modseq, 1 << 62))
        vanished = sorted({uid for _, uid in self._vanished[start:]})
        return Changes(changed, vanished, self.modseq)


class MailboxStates:
    """The states of recently used mailboxes of one IMAP service (an LRU
    bounded by the total number of messages held)."""

    def __init__(self, db: Database, max_messages: int = 500_000) -> None:
        self.db = db
        self.max_messages = max_messages
        self._states: OrderedDict[int, MailboxState] = OrderedDict()
        # (account, normalised name) -> mailbox id; only a hint: callers
        # check the refreshed state's name and account.
        self._ids: dict[tuple[int, str], int] = {}

    def cached(self, mailbox_id: int) -> MailboxState | None:
        state = self._states.get(mailbox_id)
        if state is not None and state.loaded and state.counters is not None:
            return state
        return None

    async def current(self, mailbox_id: int, *, at_least: int | None = None
                      ) -> MailboxState | None:
        """The state, refreshed after this call began, or only as far as
        ``at_least`` when that is given and already reached (the change feed
        told us of this server's commits up to it). None: the mailbox is gone."""
        state = self._states.get(mailbox_id)
        if state is None:
            state = self._states[mailbox_id] = MailboxState(mailbox_id)
        self._states.move_to_end(mailbox_id)
        if at_least is None or not state.loaded or state.modseq < at_least:
            if not await state.refresh(self.db):
                self._states.pop(mailbox_id, None)
                return None
            self._evict()
        return state if state.counters is not None else None

    async def by_client_name(self, account_id: int, name: str
                             ) -> tuple[MailboxState, MailboxCounters] | None:
        """The refreshed state and its counters of the mailbox a client named
        (not yet normalised); None when there is none or the name is invalid:
        the store's own path then answers the client (and reports the bad name)."""
        try:
            wanted = normalise(name)
        except Exception:
            return None
        state = await self.by_name(account_id, wanted)
        counters = None if state is None else state.counters
        if state is None or counters is None:
            return None
        return state, counters

    async def by_name(self, account_id: int, name: str) -> MailboxState | None:
        """The refreshed state of the account's mailbox ``name`` (normalised),
        or None when it does not exist as such now."""
        key = (account_id, name)
        mailbox_id = self._ids.get(key)
        if mailbox_id is not None:
            state = await self.current(mailbox_id)
            counters = None if state is None else state.counters
            if counters is not None and counters.name == name \
                    and counters.account_id == account_id:
                return state
            self._ids.pop(key, None)
        row = await bulk_reads.mailbox_by_name(self.db, account_id, name)
        if row is None:
            return None
        state = await self.current(row.id)
        counters = None if state is None else state.counters
        if counters is None or counters.name != name or counters.account_id != account_id:
            return None
        if len(self._ids) > 100_000:
            self._ids.clear()
        self._ids[key] = row.id
        return state

    def apply_store(self, mailbox_id: int, updated: list[MessageState], modseq: int) -> None:
        state = self._states.get(mailbox_id)
        if state is not None:
            state.apply_store(updated, modseq)

    def apply_expunge(self, mailbox_id: int, uids: list[int], modseq: int) -> None:
        state = self._states.get(mailbox_id)
        if state is not None:
            state.apply_expunge(uids, modseq)

    def forget(self, mailbox_id: int) -> None:
        self._states.pop(mailbox_id, None)

    def _evict(self) -> None:
        # A cached FETCH record weighs about as much as ten UID/flags/MODSEQ
        # entries; the budget counts it so (about 30 MiB per 100,000 units).
        def weight(state: MailboxState) -> int:
            return len(state) + 10 * len(state.meta)

        total = sum(weight(s) for s in self._states.values())
        while total > self.max_messages and len(self._states) > 1:
            _, state = self._states.popitem(last=False)
            total -= weight(state)

    def __len__(self) -> int:
        return len(self._states)


def adopt_uids(view: Any, state: MailboxState | None) -> None:
    """Let a caught-up view share the state's UID array instead of its own
    copy (equal contents, compared in C)."""
    if (state is None or view.uids is state.uids or view.pending_expunge
            or len(view.uids) != len(state.uids)):
        return
    if view.uids == state.uids:
        view.uids = state.uids
