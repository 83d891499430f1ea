"""Batched reads of the mail store for IMAP (storage layer, read side only).

The IMAP server answers one command with as few database statements as it
can: every body (or only the header block) a FETCH chunk needs in one
``IN`` query, a mailbox's changes since a MODSEQ together with its counters
in one ``UNION ALL`` statement (one statement is one snapshot on both
backends, so no REPEATABLE READ transaction is needed), and the records of a
FETCH chunk in one query.  Statements run on a plain connection of the read
engine (no ORM session: nothing here builds objects per row but the values).

Nothing here writes; writes stay in ``mailserver.store.service.MailStore``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, literal, select, union_all

from directory.db import Database
from mailserver.store import flags as fl
from mailserver.store import queries as q
from mailserver.store.model import MessageMeta

# Bound parameters per statement stay far below both backends' limits.
CHUNK = 1000
# Header blocks are read as this prefix of the blob; a header that does not
# end inside it (rare: huge Received: chains) costs one more read of the blob.
HEADER_PREFIX = 16 * 1024
_NO_EXPUNGED = 1 << 62

m = q.messages


def _chunks(items: Sequence[Any], size: int = CHUNK) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


async def _sqlite_rows(db: Database, sql: str, parameters: Sequence[Any]) -> list[Any]:
    """One read statement on SQLite in one hop to the driver's thread
    (aiosqlite's public ``execute_fetchall``).  Through SQLAlchemy a read
    is about eight hops (BEGIN, cursor, execute, fetch, close, ROLLBACK),
    each waiting for the GIL behind a busy event loop.  The read engine's
    connections run in autocommit mode (``directory.db``), so the
    statement is its own snapshot."""
    async with db.read_engine.connect() as conn:
        raw = await conn.get_raw_connection()
        return list(await raw.driver_connection.execute_fetchall(sql, parameters))


def _marks(n: int) -> str:
    return ",".join("?" * n)


async def read_blobs(db: Database, blob_ids: Iterable[str]) -> dict[str, bytes]:
    """The bodies of ``blob_ids`` (missing ids are simply absent)."""
    wanted = sorted(set(blob_ids))
    out: dict[str, bytes] = {}
    if not wanted:
        return out
    b = q.blobs
    if db.is_sqlite:
        for chunk in _chunks(wanted):
            out.update((blob_id, bytes(data)) for blob_id, data in await _sqlite_rows(
                db, f"SELECT id, data FROM message_blobs WHERE id IN ({_marks(len(chunk))})",
                chunk))
        return out
    async with db.read_engine.connect() as conn:
        for chunk in _chunks(wanted):
            result = await conn.execute(select(b.c.id, b.c.data).where(b.c.id.in_(chunk)))
            out.update((blob_id, bytes(data)) for blob_id, data in result)
    return out


def header_of_prefix(prefix: bytes, complete: bool) -> bytes | None:
    """The header block (with its blank line, RFC 5322 2.1) cut from the
    first octets of a message; None when the prefix is too short to tell.
    Same result as ``mailserver.imap.mime.entity.split_header(whole)[0]``."""
    pos = 0
    size = len(prefix)
    while pos < size:
        end = prefix.find(b"\n", pos)
        if end < 0:
            break
        if end == pos or (end == pos + 1 and prefix[pos] == 0x0D):
            return prefix[:end + 1]
        pos = end + 1
    # No blank line: the whole message is header, if we saw all of it.
    return prefix if complete else None


async def read_headers(db: Database, blob_ids: Iterable[str],
                       prefix: int = HEADER_PREFIX) -> dict[str, bytes]:
    """The header blocks of ``blob_ids``, reading only a prefix of each
    body in SQL (``substr`` works on BLOB and bytea alike)."""
    wanted = sorted(set(blob_ids))
    out: dict[str, bytes] = {}
    if not wanted:
        return out
    b = q.blobs
    again: list[str] = []
    rows: list[Any] = []
    if db.is_sqlite:
        for chunk in _chunks(wanted):
            rows += await _sqlite_rows(
                db, "SELECT id, size, substr(data, 1, ?) FROM message_blobs "
                f"WHERE id IN ({_marks(len(chunk))})", [prefix, *chunk])
    else:
        async with db.read_engine.connect() as conn:
            for chunk in _chunks(wanted):
                rows += await conn.execute(
                    select(b.c.id, b.c.size, func.substr(b.c.data, 1, prefix))
                    .where(b.c.id.in_(chunk)))
    for blob_id, size, head in rows:
        head = bytes(head)
        header = header_of_prefix(head, complete=len(head) >= size)
        if header is None:
            again.append(blob_id)
        else:
            out[blob_id] = header
    if again:
        for blob_id, data in (await read_blobs(db, again)).items():
            out[blob_id] = header_of_prefix(data, complete=True) or data
    return out


async def fetch_metas(db: Database, mailbox_id: int,
                      uids: Sequence[int]) -> list[MessageMeta]:
    """FETCH records of ``uids`` in UID order (what ``MailStore.fetch_messages``
    returns), one statement per ``CHUNK`` UIDs."""
    out: list[MessageMeta] = []
    if not uids:
        return out
    decode = fl.decode
    if db.is_sqlite:
        # The column type's own conversion, as SQLAlchemy would apply it.
        dialect = db.read_engine.dialect
        date_of = m.c.internal_date.type.dialect_impl(dialect).result_processor(dialect, None)
        for chunk in _chunks(sorted(set(uids))):
            rows = await _sqlite_rows(
                db, "SELECT uid, system_flags, keywords, internal_date, size, modseq, blob_id "
                f"FROM messages WHERE mailbox_id = ? AND uid IN ({_marks(len(chunk))}) "
                "ORDER BY uid", [mailbox_id, *chunk])
            out.extend(MessageMeta(uid, decode(bits, kw),
                                   date_of(date) if date_of is not None else date,
                                   size, modseq, blob_id)
                       for uid, bits, kw, date, size, modseq, blob_id in rows)
        return out
    async with db.read_engine.connect() as conn:
        for chunk in _chunks(sorted(set(uids))):
            result = await conn.execute(
                select(m.c.uid, m.c.system_flags, m.c.keywords, m.c.internal_date, m.c.size,
                       m.c.modseq, m.c.blob_id)
                .where(m.c.mailbox_id == mailbox_id, m.c.uid.in_(chunk)).order_by(m.c.uid))
            out.extend(MessageMeta(uid, decode(bits, kw), date, size, modseq, blob_id)
                       for uid, bits, kw, date, size, modseq, blob_id in result)
    return out


@dataclass(frozen=True)
class MailboxRow:
    """A mailbox's identity and counters as one statement saw them."""

    id: int
    account_id: int
    name: str
    uidvalidity: int
    uidnext: int
    highestmodseq: int


@dataclass(frozen=True)
class MailboxDelta:
    """What changed in a mailbox after a MODSEQ, read in one snapshot
    (RFC 7162 3.1.4.1 CHANGEDSINCE, 3.2.10 VANISHED).  ``changed`` is
    (uid, flags, modseq) and ``vanished`` (uid, modseq), both in UID order;
    ``mailbox`` is None when the mailbox no longer exists."""

    mailbox: MailboxRow | None
    changed: list[tuple[int, frozenset[str], int]]
    vanished: list[tuple[int, int]]


async def mailbox_by_name(db: Database, account_id: int, name: str) -> MailboxRow | None:
    """The mailbox ``name`` (already normalised) of an account."""
    mb = q.mailboxes
    if db.is_sqlite:
        rows = await _sqlite_rows(
            db, "SELECT id, account_id, name, uidvalidity, uidnext, highestmodseq "
            "FROM mailboxes WHERE account_id = ? AND name = ?", [account_id, name])
        return MailboxRow(*rows[0]) if rows else None
    async with db.read_engine.connect() as conn:
        row = (await conn.execute(
            select(mb.c.id, mb.c.account_id, mb.c.name, mb.c.uidvalidity, mb.c.uidnext,
                   mb.c.highestmodseq)
            .where(mb.c.account_id == account_id, mb.c.name == name))).one_or_none()
    return None if row is None else MailboxRow(*row)


# The statement of mailbox_delta, written out for SQLite's one-hop path.
_SQLITE_DELTA = (
    "SELECT 0, uid, system_flags, keywords, modseq, 0 FROM messages "
    "WHERE mailbox_id = ? AND modseq > ? "
    "UNION ALL SELECT 1, uid, 0, '', modseq, 0 FROM expunged "
    "WHERE mailbox_id = ? AND modseq > ? "
    "UNION ALL SELECT 2, uidnext, uidvalidity, name, highestmodseq, account_id FROM mailboxes "
    "WHERE id = ?")


async def mailbox_delta(db: Database, mailbox_id: int, modseq: int | None) -> MailboxDelta:
    """Messages changed after ``modseq`` (every message when None), UIDs
    expunged after it (none when None) and the mailbox row: one statement,
    so one snapshot on SQLite and PostgreSQL alike."""
    mb, e = q.mailboxes, q.expunged
    changed_after = -1 if modseq is None else modseq
    expunged_after = _NO_EXPUNGED if modseq is None else modseq
    statement = union_all(
        select(literal(0).label("kind"), m.c.uid.label("a"), m.c.system_flags.label("b"),
               m.c.keywords.label("c"), m.c.modseq.label("d"), literal(0).label("e"))
        .where(m.c.mailbox_id == mailbox_id, m.c.modseq > changed_after),
        select(literal(1), e.c.uid, literal(0), literal(""), e.c.modseq, literal(0))
        .where(e.c.mailbox_id == mailbox_id, e.c.modseq > expunged_after),
        select(literal(2), mb.c.uidnext, mb.c.uidvalidity, mb.c.name, mb.c.highestmodseq,
               mb.c.account_id)
        .where(mb.c.id == mailbox_id),
    )
    changed: list[tuple[int, frozenset[str], int]] = []
    vanished: list[tuple[int, int]] = []
    row: MailboxRow | None = None
    decode = fl.decode
    if db.is_sqlite:
        rows: Any = await _sqlite_rows(db, _SQLITE_DELTA, [
            mailbox_id, changed_after, mailbox_id, expunged_after, mailbox_id])
    else:
        async with db.read_engine.connect() as conn:
            rows = (await conn.execute(statement)).all()
    for kind, a, b, c, d, account in rows:
        if kind == 0:
            changed.append((a, decode(b, c), d))
        elif kind == 1:
            vanished.append((a, d))
        else:
            row = MailboxRow(mailbox_id, account, c, b, a, d)
    if row is None:
        return MailboxDelta(None, [], [])
    changed.sort()
    vanished.sort()
    return MailboxDelta(row, changed, vanished)


class HeaderCache:
    """A server-wide LRU of header blocks by blob id, bounded in bytes.

    Blobs are content-addressed and never change, so an entry is valid for
    as long as it is kept; one instance per IMAP service (no global state).
    """

    async def _load(self, db: Database, blob_ids: list[str]) -> dict[str, bytes]:
        return await read_headers(db, blob_ids)

    def __init__(self, max_bytes: int = 16 * 1024 * 1024, max_entry: int = 64 * 1024) -> None:
        self._max_bytes = max_bytes
        self._max_entry = max_entry
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, blob_id: str) -> bytes | None:
        found = self._items.get(blob_id)
        if found is not None:
            self._items.move_to_end(blob_id)
            self.hits += 1
        else:
            self.misses += 1
        return found

    def put(self, blob_id: str, header: bytes) -> None:
        if len(header) > self._max_entry or blob_id in self._items:
            return
        self._items[blob_id] = header
        self._bytes += len(header)
        while self._bytes > self._max_bytes:
            _, evicted = self._items.popitem(last=False)
            self._bytes -= len(evicted)

    async def get_many(self, db: Database, blob_ids: Iterable[str]) -> dict[str, bytes]:
        """Entries for ``blob_ids``: cached ones at once, the rest in one read."""
        out: dict[str, bytes] = {}
        missing: list[str] = []
        for blob_id in blob_ids:
            if blob_id in out:
                continue
            found = self.get(blob_id)
            if found is None:
                missing.append(blob_id)
            else:
                out[blob_id] = found
        if missing:
            for blob_id, header in (await self._load(db, missing)).items():
                self.put(blob_id, header)
                out[blob_id] = header
        return out

    def __len__(self) -> int:
        return len(self._items)


class BodyCache(HeaderCache):
    """The same LRU for whole small bodies (FETCH BODY[], BODYSTRUCTURE):
    a reader opening a message again, or many readers of one circular,
    need no database round trip."""

    async def _load(self, db: Database, blob_ids: list[str]) -> dict[str, bytes]:
        return await read_blobs(db, blob_ids)



def split_headers(bodies: dict[str, bytes]) -> dict[str, bytes]:
    """The header block of each body (``split_header(body)[0]``)."""
    return {blob_id: header_of_prefix(data, complete=True) or data
            for blob_id, data in bodies.items()}
