"""How many messages, and how many unseen, each mailbox holds: the webmail's
folder list and page count on every page, without counting 50,000 rows each time.

A mailbox's ``(uidvalidity, uidnext, highestmodseq)`` changes with every
append, flag change and expunge (RFC 7162 CONDSTORE keeps ``highestmodseq``;
``uidnext`` grows with every new message), so counts read under one such key
stay true until the key moves.  One cheap statement reads every mailbox's key
(the mailboxes table only); only mailboxes whose key moved are counted again,
all of them in one statement.  The key is read before counting, so a change in
between leaves counts newer than their key, and the next look sees the moved
key and counts again: never a stale count past one change.  Other processes
change the database too; they move the key the same way.

The same key keeps the first UID of every page (``page_start``), so a folder
page deep in a large mailbox reads its 50 rows by a UID range instead of
stepping over every newer message (OFFSET).

Kept in memory per ``MailStore`` (no module state), at most ``limit`` mailboxes.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from directory.db import Database
from mailserver.store.bulk_reads import _in, _rows

Key = tuple[int, int, int]  # uidvalidity, uidnext, highestmodseq


@dataclass(frozen=True)
class MailboxCount:
    id: int
    name: str
    total: int
    unseen: int


@dataclass
class MailboxCounts:
    limit: int = 50_000
    _known: OrderedDict[int, tuple[Key, int, int]] = field(default_factory=OrderedDict)
    # (key, page size) -> the first UID of every page, newest first; few mailboxes
    # are paged through (at most ``pages_limit`` kept).
    pages_limit: int = 1000
    _pages: OrderedDict[int, tuple[Key, int, list[int]]] = field(default_factory=OrderedDict)

    async def page_start(self, db: Database, mailbox_id: int, key: Key, offset: int,
                         size: int) -> int | None:
        """The highest UID on the page of ``size`` messages at ``offset`` (newest
        first), or None past the end.  One scan of the mailbox's UID index
        numbers every page when the mailbox changed; then a page is an index range
        of ``size`` rows, not a walk over the ``offset`` rows before it."""
        if offset % size:
            rows = await _rows(db, "SELECT uid FROM messages WHERE mailbox_id = ? "
                                   "ORDER BY uid DESC LIMIT 1 OFFSET ?", [mailbox_id, offset])
            return int(rows[0][0]) if rows else None
        known = self._pages.get(mailbox_id)
        if known is None or known[0] != key or known[1] != size:
            starts = [int(uid) for uid, in await _rows(
                db, "SELECT uid FROM (SELECT uid, ROW_NUMBER() OVER (ORDER BY uid DESC) AS n "
                    "FROM messages WHERE mailbox_id = ?) AS numbered WHERE (n - 1) % ? = 0 "
                    "ORDER BY uid DESC", [mailbox_id, size])]
            known = (key, size, starts)
            self._pages[mailbox_id] = known
            while len(self._pages) > self.pages_limit:
                self._pages.popitem(last=False)
        self._pages.move_to_end(mailbox_id)
        page = offset // size
        return known[2][page] if page < len(known[2]) else None

    async def of_account(self, db: Database, account_id: int) -> list[MailboxCount]:
        """Every mailbox of the account with its counts (by name order of the rows)."""
        rows = await _rows(db, "SELECT id, name, uidvalidity, uidnext, highestmodseq "
                               "FROM mailboxes WHERE account_id = ?", [account_id])
        counts = await self._counts(db, {int(i): (int(v), int(n), int(m))
                                         for i, _name, v, n, m in rows})
        return [MailboxCount(int(i), str(name), *counts[int(i)]) for i, name, *_ in rows]

    async def of_mailbox(self, db: Database, mailbox_id: int, key: Key) -> tuple[int, int]:
        """(messages, unseen) of one mailbox whose key the caller just read."""
        return (await self._counts(db, {mailbox_id: key}))[mailbox_id]

    async def _counts(self, db: Database, keys: dict[int, Key]) -> dict[int, tuple[int, int]]:
        out: dict[int, tuple[int, int]] = {}
        stale = []
        for mailbox_id, key in keys.items():
            known = self._known.get(mailbox_id)
            if known is not None and known[0] == key:
                self._known.move_to_end(mailbox_id)
                out[mailbox_id] = known[1], known[2]
            else:
                stale.append(mailbox_id)
        if stale:
            where, values = _in(db, stale)
            counted = {int(mailbox_id): (int(total), int(unseen or 0)) for
                       mailbox_id, total, unseen in await _rows(
                           db, "SELECT mailbox_id, COUNT(*), "
                               "SUM(CASE WHEN (system_flags & 1) = 0 THEN 1 ELSE 0 END) "
                               f"FROM messages WHERE mailbox_id {where} GROUP BY mailbox_id",
                           values)}
            for mailbox_id in stale:
                out[mailbox_id] = counted.get(mailbox_id, (0, 0))
                self._known[mailbox_id] = (keys[mailbox_id], *out[mailbox_id])
                self._known.move_to_end(mailbox_id)
            while len(self._known) > self.limit:
                self._known.popitem(last=False)
        return out
