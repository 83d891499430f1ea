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

import datetime as dt
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from directory.db import Database
from mailserver.store import flags as fl
from mailserver.store import queries as q
from mailserver.store.model import MailboxInfo, MessageMeta

# Bound parameters per statement stay far below both backends' limits.
CHUNK = 1000
# Header blocks are read as this prefix of the blob; a header that does not
# end inside it (rare: huge Received: chains) costs one more read of the blob.
HEADER_PREFIX = 16 * 1024
_NO_EXPUNGED = 1 << 62

m = q.messages


def _chunks(items: Sequence[Any], size: int = CHUNK) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


async def _rows(db: Database, sql: str, parameters: Sequence[Any]) -> list[Any]:
    """One read statement in one driver call (``Database.read_rows``)."""
    return await db.read_rows(sql, parameters)


async def _small(db: Database, sql: str, parameters: Sequence[Any]) -> list[Any]:
    """A small indexed read (``Database.read_rows_small``: on SQLite on the
    event loop's own thread, without a hop to the pool's thread)."""
    return await db.read_rows_small(sql, parameters)


# Up to this many rows (bodies, header blocks, records) a read is "small".
SMALL_BODIES = 8
SMALL_HEADERS = 64
SMALL_RECORDS = 256


def _in(db: Database, values: Sequence[Any]) -> tuple[str, list[Any]]:
    """``IN (?, ?, ...)`` on SQLite, ``= ANY(?)`` with one array on PostgreSQL
    (one prepared statement whatever the count)."""
    if db.is_sqlite:
        return f"IN ({','.join('?' * len(values))})", list(values)
    return "= ANY(?)", [list(values)]


async def read_blobs(db: Database, blob_ids: Iterable[str]) -> dict[str, bytes]:
    """The bodies of ``blob_ids`` (missing ids are simply absent)."""
    wanted = sorted(set(blob_ids))
    out: dict[str, bytes] = {}
    for chunk in _chunks(wanted):
        where, values = _in(db, chunk)
        read = _small if len(chunk) <= SMALL_BODIES else _rows
        out.update((blob_id, bytes(data)) for blob_id, data in await read(
            db, f"SELECT id, data FROM message_blobs WHERE id {where}", values))
    return out


# A header field or continuation line (as mailserver.imap.mime.entity reads
# it, after the email package's ``feedparser.headerRE``).
_HEADER_LINE = re.compile(rb"[\041-\071\073-\176]*:|[\t ]")


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
        if _HEADER_LINE.match(prefix, pos) is None:
            return prefix[:pos]  # a line that is no field starts the body
        pos = end + 1
    if not complete:
        return None
    if pos < size and _HEADER_LINE.match(prefix, pos) is None:
        return prefix[:pos]
    # No blank line: the whole message is header.
    return prefix


async def read_headers(db: Database, blob_ids: Iterable[str],
                       prefix: int = HEADER_PREFIX) -> dict[str, bytes]:
    """The header blocks of ``blob_ids``, reading only a prefix of each
    body in SQL (``substr`` works on BLOB and bytea alike)."""
    wanted = sorted(set(blob_ids))
    out: dict[str, bytes] = {}
    again: list[str] = []
    for chunk in _chunks(wanted):
        where, values = _in(db, chunk)
        read = _small if len(chunk) <= SMALL_HEADERS else _rows
        for blob_id, size, head in await read(
                db, f"SELECT id, size, substr(data, 1, ?) FROM message_blobs WHERE id {where}",
                [prefix, *values]):
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
    decode = fl.decode
    # The column type's own conversion of the date, as SQLAlchemy applies it.
    dialect = db.read_engine.dialect
    processor = m.c.internal_date.type.dialect_impl(dialect).result_processor(dialect, None)

    def date_of(raw: object) -> dt.datetime:
        value = processor(raw) if processor is not None else raw
        if not isinstance(value, dt.datetime):  # a NOT NULL column
            raise TypeError(f"internal_date of message read as {value!r}")
        return value

    for chunk in _chunks(sorted(set(uids))):
        where, values = _in(db, chunk)
        read = _small if len(chunk) <= SMALL_RECORDS else _rows
        rows = await read(
            db, "SELECT uid, system_flags, keywords, internal_date, size, modseq, blob_id "
            f"FROM messages WHERE mailbox_id = ? AND uid {where} ORDER BY uid",
            [mailbox_id, *values])
        out.extend(MessageMeta(uid, decode(bits, kw), date_of(date), size, modseq, blob_id)
                   for uid, bits, kw, date, size, modseq, blob_id in rows)
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


async def has_mail_state(db: Database, account_id: int) -> bool:
    """Whether the account's mail state (its row and default mailboxes) exists."""
    return bool(await _small(db, "SELECT 1 FROM mail_accounts WHERE account_id = ?",
                            [account_id]))


async def mailbox_by_name(db: Database, account_id: int, name: str) -> MailboxRow | None:
    """The mailbox ``name`` (already normalised) of an account."""
    rows = await _small(
        db, "SELECT id, account_id, name, uidvalidity, uidnext, highestmodseq "
        "FROM mailboxes WHERE account_id = ? AND name = ?", [account_id, name])
    return MailboxRow(*rows[0]) if rows else None


async def mailbox_infos(db: Database, account_id: int) -> list[MailboxInfo]:
    """Every mailbox of an account by name, without counting messages (LIST)."""
    return [MailboxInfo(i, a, name, use, validity, uidnext, modseq, bool(subscribed))
            for i, a, name, use, validity, uidnext, modseq, subscribed in await _small(
                db, "SELECT id, account_id, name, special_use, uidvalidity, uidnext, "
                "highestmodseq, subscribed FROM mailboxes WHERE account_id = ? "
                "ORDER BY name", [account_id])]


async def recent_uid(db: Database, mailbox_id: int) -> int | None:
    """The mailbox's first UID not yet claimed as \\Recent; None: no mailbox."""
    rows = await _small(db, "SELECT recent_uid FROM mailboxes WHERE id = ?", [mailbox_id])
    return int(rows[0][0]) if rows else None


# Changes, expunges and the mailbox row in one statement: one snapshot on
# both backends without a REPEATABLE READ transaction.
_DELTA = (
    "SELECT 0, uid, system_flags, keywords, modseq, 0 FROM messages "
    "WHERE mailbox_id = ? AND modseq > ? "
    "UNION ALL SELECT 1, uid, 0, '', modseq, 0 FROM expunged "
    "WHERE mailbox_id = ? AND modseq > ? "
    "UNION ALL SELECT 2, uidnext, uidvalidity, name, highestmodseq, account_id FROM mailboxes "
    "WHERE id = ?")


async def mailbox_delta(db: Database, mailbox_id: int, modseq: int | None) -> MailboxDelta:
    """Messages changed after ``modseq`` (every message when None), UIDs
    expunged after it (none when None) and the mailbox row."""
    changed_after = -1 if modseq is None else modseq
    expunged_after = _NO_EXPUNGED if modseq is None else modseq
    # A loaded state's delta is a few rows; the first load reads the whole
    # mailbox (on the pool's thread: the event loop goes on meanwhile).
    read = _rows if modseq is None else _small
    rows = await read(db, _DELTA, [mailbox_id, changed_after, mailbox_id, expunged_after,
                                    mailbox_id])
    changed: list[tuple[int, frozenset[str], int]] = []
    vanished: list[tuple[int, int]] = []
    row: MailboxRow | None = None
    decode = fl.decode
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
        for blob_id in dict.fromkeys(blob_ids):
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


async def messages_with_content(db: Database, account_id: int, blob_id: str
                                ) -> list[tuple[str, int]]:
    """(mailbox name, UID) of the account's messages whose bytes are ``blob_id``
    (content-addressed: one sha256 for every copy of a delivered mail)."""
    rows = await _rows(
        db, "SELECT mb.name, m.uid FROM messages m JOIN mailboxes mb ON mb.id = m.mailbox_id "
        "WHERE mb.account_id = ? AND m.blob_id = ? ORDER BY m.uid", [account_id, blob_id])
    return [(str(name), int(uid)) for name, uid in rows]
