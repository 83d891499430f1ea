"""Folder pages and text search for readers that show a page at a time (the webmail).

``latest`` reads one page of a mailbox newest first straight from the
``(mailbox_id, uid)`` index: a 50,000-message INBOX costs the 50 rows shown
and one COUNT, not the whole mailbox's state.

``search`` finds messages by sender, recipients, subject, body text (case-
insensitive substrings) and a date range.  The texts live in
``message_search``, one row per body (bodies are content-addressed, so a row
never goes stale and serves every copy).  Rows are made lazily: a search
first indexes the mailbox's bodies that have none yet (new mail since the
last search: usually a handful).  Substring matching uses trigram indexes
(migration ``mail_0002_webmail``): FTS5 ``trigram`` on SQLite, ``pg_trgm``
GIN indexes on PostgreSQL; terms shorter than three characters fall back to
a scan of the mailbox's rows.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.message
import email.parser
import email.policy
import email.utils
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from directory.db import Database
from mailserver.schema import MessageSearchRow
from mailserver.store import flags as fl
from mailserver.store import queries as q
from mailserver.store.bulk_reads import _rows, mailbox_by_name, read_blobs
from mailserver.store.model import MailboxNotFound, MessageMeta
from mailserver.store.names import normalise

BODY_CHARS = 20_000  # of a body's text, enough to find a mail by what it says
INDEX_CHUNK = 200
_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.IGNORECASE | re.DOTALL)
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class SearchQuery:
    """All given parts must match (AND); empty strings are not asked."""

    text: str = ""  # anywhere: sender, recipients, subject or body
    sender: str = ""
    recipient: str = ""
    subject: str = ""
    body: str = ""
    since: dt.date | None = None  # sent on or after (RFC 9051 SENTSINCE)
    before: dt.date | None = None  # sent before (SENTBEFORE)

    @property
    def empty(self) -> bool:
        return not any((self.text.strip(), self.sender.strip(), self.recipient.strip(),
                        self.subject.strip(), self.body.strip(), self.since, self.before))


@dataclass(frozen=True)
class Found:
    total: int  # how many match, over all pages
    messages: list[MessageMeta]  # the asked page, newest first


_search_table = MessageSearchRow.__table__

_META = "uid, system_flags, keywords, internal_date, size, modseq, blob_id"


def _meta(row: Any) -> MessageMeta:
    uid, bits, keywords, internal_date, size, modseq, blob_id = row
    if isinstance(internal_date, str):  # SQLite's raw driver hands back text
        internal_date = dt.datetime.fromisoformat(internal_date)
    if internal_date.tzinfo is None:
        internal_date = internal_date.replace(tzinfo=dt.UTC)
    return MessageMeta(uid, fl.decode(bits, keywords), internal_date, size, modseq, blob_id)


async def _mailbox_id(db: Database, account_id: int, mailbox: str) -> int:
    row = await mailbox_by_name(db, account_id, normalise(mailbox))
    if row is None:
        raise MailboxNotFound(f"no mailbox {mailbox!r}")
    return int(row.id)


async def latest(db: Database, account_id: int, mailbox: str, offset: int,
                 limit: int) -> Found:
    """One page of ``mailbox``, newest (highest UID) first."""
    mailbox_id = await _mailbox_id(db, account_id, mailbox)
    (total,), = await _rows(db, "SELECT COUNT(*) FROM messages WHERE mailbox_id = ?",
                            [mailbox_id])
    rows = await _rows(db, f"SELECT {_META} FROM messages WHERE mailbox_id = ? "
                           "ORDER BY uid DESC LIMIT ? OFFSET ?", [mailbox_id, limit, offset])
    return Found(int(total), [_meta(r) for r in rows])


# --- the index ----------------------------------------------------------------------------
def _header(message: email.message.Message, *names: str) -> str:
    values = []
    for name in names:
        for value in message.get_all(name) or []:
            try:
                values.append(str(value))
            except Exception:  # undecodable on hostile input
                continue
    return " ".join(values)


def _body_text(message: email.message.EmailMessage) -> str:
    try:
        part = message.get_body(preferencelist=("plain", "html"))
        content = part.get_content() if part is not None else ""
    except Exception:  # unknown charset, broken transfer encoding
        return ""
    if not isinstance(content, str):
        return ""
    if part is not None and part.get_content_type() == "text/html":
        content = _TAG.sub(" ", content)
    return _SPACE.sub(" ", content)[:BODY_CHARS]


def index_row(blob_id: str, data: bytes, internal_date: dt.datetime) -> dict[str, Any]:
    """The searchable texts of one message (decoded headers, text of the body)."""
    parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(data)
    try:
        sent_at = email.utils.parsedate_to_datetime(_header(parsed, "Date"))
        if sent_at.tzinfo is None:
            sent_at = sent_at.replace(tzinfo=dt.UTC)
    except (TypeError, ValueError, IndexError):
        sent_at = internal_date
    return {"blob_id": blob_id, "sent_at": sent_at.astimezone(dt.UTC),
            "sender": _header(parsed, "From", "Sender", "Reply-To"),
            "recipients": _header(parsed, "To", "Cc", "Bcc"),
            "subject": _header(parsed, "Subject"),
            "body": _body_text(parsed)}  # type: ignore[arg-type]


async def index_mailbox(db: Database, mailbox_id: int) -> int:
    """Index the bodies of ``mailbox_id`` that have no search row yet; returns how many."""
    missing = await _rows(db, "SELECT DISTINCT m.blob_id, m.internal_date FROM messages m "
                              "LEFT JOIN message_search s ON s.blob_id = m.blob_id "
                              "WHERE m.mailbox_id = ? AND s.id IS NULL", [mailbox_id])
    done = 0
    for start in range(0, len(missing), INDEX_CHUNK):
        chunk = missing[start:start + INDEX_CHUNK]
        bodies = await read_blobs(db, [blob_id for blob_id, _ in chunk])
        rows = [index_row(blob_id, bodies[blob_id], _meta((0, 0, "", when, 0, 0, "")).
                          internal_date)
                for blob_id, when in chunk if blob_id in bodies]
        # Parsing is CPU work: the bench's 50,000 first-search would hold the loop.
        await asyncio.sleep(0)
        done += await _insert_index_rows(db, rows)
    return done


async def _insert_index_rows(db: Database, rows: Sequence[dict[str, Any]]) -> int:
    if not rows:
        return 0
    inserted = 0
    async with db.write() as session:
        for row in rows:
            result = await session.execute(
                q.insert_ignoring_conflict(session, _search_table).values(**row)
                .returning(_search_table.c.id))
            new_id = result.scalar()
            if new_id is None:
                continue  # a concurrent search indexed it first
            inserted += 1
            if db.is_sqlite:
                await session.execute(text(
                    "INSERT INTO message_search_fts (rowid, sender, recipients, subject, body) "
                    "VALUES (:id, :sender, :recipients, :subject, :body)"),
                    {**row, "id": new_id})
    return inserted


# --- searching ------------------------------------------------------------------------------
_COLUMNS = ("sender", "recipients", "subject", "body")


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _fts_phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _conditions(query: SearchQuery, sqlite: bool) -> tuple[list[str], list[Any], bool]:
    """SQL conditions and their values; whether the FTS table must be joined."""
    wanted = [(query.text, _COLUMNS), (query.sender, ("sender",)),
              (query.recipient, ("recipients",)), (query.subject, ("subject",)),
              (query.body, ("body",))]
    where: list[str] = []
    values: list[Any] = []
    fts: list[str] = []
    for term, columns in wanted:
        term = " ".join(term.split())
        if not term:
            continue
        if sqlite and len(term) >= 3:  # a trigram needs three characters
            scope = columns[0] if len(columns) == 1 else "{" + " ".join(columns) + "}"
            fts.append(f"{scope} : {_fts_phrase(term)}")
            continue
        operator = "LIKE" if sqlite else "ILIKE"  # SQLite's LIKE ignores ASCII case
        where.append("(" + " OR ".join(f"s.{c} {operator} ? ESCAPE '\\'" for c in columns)
                     + ")")
        values.extend(_like(term) for _ in columns)
    if fts:
        where.insert(0, "message_search_fts MATCH ?")
        values.insert(0, " AND ".join(fts))
    if query.since is not None:
        where.append("s.sent_at >= ?")
        values.append(_bound(query.since, sqlite))
    if query.before is not None:
        where.append("s.sent_at < ?")
        values.append(_bound(query.before, sqlite))
    return where, values, bool(fts)


def _bound(day: dt.date, sqlite: bool) -> Any:
    moment = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    # SQLite stores the UtcDateTime columns as naive ISO text in UTC.
    return moment.replace(tzinfo=None).isoformat(sep=" ") if sqlite else moment


async def search(db: Database, account_id: int, mailbox: str, query: SearchQuery,
                 offset: int, limit: int) -> Found:
    """Messages of ``mailbox`` matching ``query``, newest first (indexes new mail first)."""
    mailbox_id = await _mailbox_id(db, account_id, mailbox)
    await index_mailbox(db, mailbox_id)
    where, values, fts = _conditions(query, db.is_sqlite)
    joins = "JOIN message_search s ON s.blob_id = m.blob_id"
    if fts:
        joins += " JOIN message_search_fts ON message_search_fts.rowid = s.id"
    condition = " AND ".join(["m.mailbox_id = ?", *where])
    parameters = [mailbox_id, *values]
    (total,), = await _rows(db, f"SELECT COUNT(*) FROM messages m {joins} WHERE {condition}",
                            parameters)
    columns = ", ".join(f"m.{c.strip()}" for c in _META.split(","))
    rows = await _rows(db, f"SELECT {columns} FROM messages m {joins} WHERE {condition} "
                           "ORDER BY m.uid DESC LIMIT ? OFFSET ?", [*parameters, limit, offset])
    return Found(int(total), [_meta(r) for r in rows])
