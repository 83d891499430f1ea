"""STORE and the implicit ``\\Seen`` of FETCH, group-committed (RFC 9051
6.4.6, RFC 3501 6.4.5, CONDSTORE RFC 7162 3.1.3).

Every flag change is a write transaction and a commit is an fsync; with
SQLite's single writer, 100 sessions flagging at once queued one fsync each.
Here STOREs that arrive while a commit runs share the next transaction
(``mailserver.store.batcher.CommitBatcher``, the delivery path's group
commit), and the whole batch costs a fixed handful of statements (each
statement is a round trip through the event loop; one per STORE made a
batch of 50 take a second).  Each STORE keeps the semantics of
``mailserver.store.messages.store_flags``: applied in arrival order, with
its own MODSEQ, and answered only after the shared commit.  A STORE on a
deleted mailbox fails alone; any other error makes the batcher retry the
batch one STORE per transaction.

After the commit the change feed is told (as ``MailStore.store_flags``
does) and the shared mailbox states take the result directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mailserver.changes import MailboxChange
from mailserver.imap.mailbox_states import MailboxStates
from mailserver.store import MailStore
from mailserver.store import flags as fl
from mailserver.store import queries as q
from mailserver.store.batcher import CommitBatcher, Failed
from mailserver.store.model import FlagMode, MailboxNotFound, MessageState, StoreResult


@dataclass(frozen=True)
class FlagWork:
    mailbox_id: int
    uids: tuple[int, ...]
    mode: FlagMode
    given: tuple[int, tuple[str, ...]]
    unchanged_since: int | None


@dataclass(frozen=True)
class FlagDone:
    work: FlagWork
    account_id: int
    result: StoreResult


class FlagWriter:
    """``store_flags`` with the signature of ``MailStore.store_flags``,
    group-committed; one per IMAP service."""

    def __init__(self, store: MailStore, states: MailboxStates | None) -> None:
        self._store = store
        self._states = states
        self._batcher: CommitBatcher[FlagWork, FlagDone] = CommitBatcher(
            store.db, self._apply, self._after_commit)

    @property
    def transactions(self) -> int:
        return self._batcher.transactions

    async def store_flags(self, mailbox_id: int, uids: Sequence[int], mode: FlagMode,
                          flags: Iterable[str],
                          unchanged_since: int | None = None) -> StoreResult:
        given = fl.encode(flags)  # InvalidFlag before any transaction
        work = FlagWork(mailbox_id, tuple(uids), mode, given, unchanged_since)
        return (await self._batcher.submit(work)).result

    @staticmethod
    async def _apply(session: AsyncSession, works: list[FlagWork]) -> list[FlagDone | Failed]:
        """The STOREs of one transaction in a fixed number of statements:
        lock the mailboxes (id order, so PostgreSQL writers never deadlock
        on them), read the touched messages, apply each STORE in arrival
        order in memory (``mailserver.store.messages.store_flags``
        semantics: UNCHANGEDSINCE, no-ops keep their MODSEQ, one new MODSEQ
        per STORE that changed something), then write every changed message
        once and each mailbox's new HIGHESTMODSEQ."""
        # Statements go straight to the driver inside the session's
        # transaction: through SQLAlchemy's async layer each one cost several
        # hops to aiosqlite's thread, and the batch held the single writer
        # for that long.
        conn = await session.connection()
        sqlite = conn.dialect.name == "sqlite"
        if not sqlite:
            # asyncpg's adapter sends BEGIN with its first statement only.
            await conn.exec_driver_sql("SELECT 1")
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        if not (raw.in_transaction if sqlite else raw.is_in_transaction()):
            raise RuntimeError("flag batch outside a transaction")
        ids = sorted({work.mailbox_id for work in works})
        marks = ",".join("?" * len(ids))
        lock = "" if sqlite else " FOR UPDATE"  # SQLite: the transaction is the lock
        boxes = {row[0]: (row[1], int(row[2])) for row in await _fetch(
            raw, sqlite, f"SELECT id, account_id, highestmodseq FROM mailboxes "
            f"WHERE id IN ({marks}) ORDER BY id{lock}", ids)}
        current: dict[tuple[int, int], tuple[int, str, int]] = {}
        for mailbox_id in boxes:
            uids = sorted({uid for work in works if work.mailbox_id == mailbox_id
                           for uid in work.uids})
            for chunk in q.chunks(uids):
                for uid, bits, keywords, modseq in await _fetch(
                        raw, sqlite, "SELECT uid, system_flags, keywords, modseq FROM messages "
                        f"WHERE mailbox_id = ? AND uid IN ({','.join('?' * len(chunk))})",
                        [mailbox_id, *chunk]):
                    current[(mailbox_id, uid)] = (bits, keywords, modseq)
        highest = {mailbox_id: modseq for mailbox_id, (_, modseq) in boxes.items()}
        written: dict[tuple[int, int], tuple[int, str, int]] = {}
        out: list[FlagDone | Failed] = []
        for work in works:
            box = boxes.get(work.mailbox_id)
            if box is None:
                out.append(Failed(MailboxNotFound(f"no mailbox {work.mailbox_id}")))
                continue
            out.append(FlagDone(work, box[0], _store_one(work, current, highest, written)))
        if written:
            await _many(raw, sqlite, "UPDATE messages SET system_flags = ?, keywords = ?, "
                        "modseq = ? WHERE mailbox_id = ? AND uid = ?",
                        [(bits, keywords, modseq, mailbox_id, uid) for (mailbox_id, uid),
                         (bits, keywords, modseq) in sorted(written.items())])
            await _many(raw, sqlite, "UPDATE mailboxes SET highestmodseq = ? WHERE id = ?",
                        [(highest[mailbox_id], mailbox_id)
                         for mailbox_id in sorted({key[0] for key in written})])
        return out

    def _after_commit(self, done: FlagDone) -> None:
        result = done.result
        if not result.updated:
            return
        if self._states is not None:
            self._states.apply_store(done.work.mailbox_id, result.updated,
                                     result.highestmodseq)
        self._store.feed.publish(MailboxChange(done.account_id, done.work.mailbox_id,
                                               result.highestmodseq))


def _store_one(work: FlagWork, current: dict[tuple[int, int], tuple[int, str, int]],
               highest: dict[int, int],
               written: dict[tuple[int, int], tuple[int, str, int]]) -> StoreResult:
    """One STORE on the in-memory rows (``current`` is updated)."""
    mailbox_id = work.mailbox_id
    modified: list[int] = []
    changed: list[tuple[int, int, str]] = []
    for uid in sorted(set(work.uids)):
        row = current.get((mailbox_id, uid))
        if row is None:
            continue  # expunged meanwhile: nothing to change
        bits, keywords, modseq = row
        if work.unchanged_since is not None and modseq > work.unchanged_since:
            modified.append(uid)
            continue
        new_bits, new_keywords = fl.apply(work.mode, bits, keywords, *work.given)
        if not fl.same(bits, keywords, new_bits, new_keywords):
            changed.append((uid, new_bits, new_keywords))
    if not changed:
        return StoreResult([], modified, highest[mailbox_id])
    modseq = highest[mailbox_id] = highest[mailbox_id] + 1
    updated = []
    for uid, bits, keywords in changed:
        current[(mailbox_id, uid)] = written[(mailbox_id, uid)] = (bits, keywords, modseq)
        updated.append(MessageState(uid, fl.decode(bits, keywords), modseq))
    return StoreResult(updated, modified, modseq)


def _numbered(sql: str) -> str:
    parts = sql.split("?")
    return "".join(part + (f"${i}" if i < len(parts) else "")
                   for i, part in enumerate(parts, 1))


async def _fetch(raw: Any, sqlite: bool, sql: str, parameters: Sequence[Any]) -> list[Any]:
    if sqlite:
        return list(await raw.execute_fetchall(sql, parameters))
    return list(await raw.fetch(_numbered(sql), *parameters))


async def _many(raw: Any, sqlite: bool, sql: str, rows: list[tuple[Any, ...]]) -> None:
    if sqlite:
        await raw.executemany(sql, rows)
    else:
        await raw.executemany(_numbered(sql), rows)
