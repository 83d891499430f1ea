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

The texts are stored case-folded (``fold``, migration ``webmail_0001``) and the
terms folded the same way, so both backends compare with a plain ``LIKE``
and find the same mail: "STRASSE" finds "Straße", "Ä" finds "ä" (SQLite's
``LIKE`` folds only ASCII, PostgreSQL's ``ILIKE`` its own way and about three
times slower than ``LIKE``).

On PostgreSQL a search is one statement that returns the UID of every match
(the total and the page come from one execution): the text conditions run
on their own first (``ARRAY(SELECT ...)``, answered by the trigram indexes),
then the mailbox's messages of those texts are picked by blob (index probes,
as many as there are matching texts).  The planner left to itself, with
asyncpg's prepared statements and so PostgreSQL's generic plans (the LIKE
pattern unknown), walked the mailbox newest first and probed the texts once
per message: 0.55 s of CPU for a word in one mail of 50,000; and it ran the
join twice (COUNT, then the page).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.header
import email.message
import email.utils
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, text

from directory.db import Database
from directory.schema import table_of
from mailserver.schema import MessageSearchRow
from mailserver.store import flags as fl
from mailserver.store import queries as q
from mailserver.store.bulk_reads import _rows, mailbox_by_name, read_blobs
from mailserver.store.mailbox_counts import MailboxCounts
from mailserver.store.model import MailboxNotFound, MessageMeta
from mailserver.store.names import normalise

BODY_CHARS = 20_000  # of a body's text, enough to find a mail by what it says
INDEX_CHUNK = 200
_MSG_ID = re.compile(r"<[^<>\s]{1,500}>")  # a msg-id (RFC 5322 3.6.4), brackets and all
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
    mailbox_id: int = 0


_search_table = table_of(MessageSearchRow)

_META = "uid, system_flags, keywords, internal_date, size, modseq, blob_id"


def _meta(row: Any) -> MessageMeta:
    uid, bits, keywords, internal_date, size, modseq, blob_id = row
    if isinstance(internal_date, str):  # SQLite's raw driver hands back text
        internal_date = dt.datetime.fromisoformat(internal_date)
    if internal_date.tzinfo is None:
        internal_date = internal_date.replace(tzinfo=dt.UTC)
    return MessageMeta(uid, fl.decode(bits, keywords), internal_date, size, modseq, blob_id)


async def latest(db: Database, counts: MailboxCounts, account_id: int, mailbox: str,
                 offset: int, limit: int) -> Found:
    """One page of ``mailbox``, newest (highest UID) first; the total from
    ``counts`` (counted again only after the mailbox changed)."""
    row = await mailbox_by_name(db, account_id, normalise(mailbox))
    if row is None:
        raise MailboxNotFound(f"no mailbox {mailbox!r}")
    key = (row.uidvalidity, row.uidnext, row.highestmodseq)
    total, _unseen = await counts.of_mailbox(db, row.id, key)
    # The page's first UID (``MailboxCounts.page_start``), then only the page's
    # rows: an OFFSET would read every skipped row (25,000 of them in the middle
    # of a 50,000-message INBOX).
    start = await counts.page_start(db, row.id, key, offset, limit) if total else None
    if start is None:
        return Found(total, [], row.id)
    rows = await _rows(db, f"SELECT {_META} FROM messages WHERE mailbox_id = ? AND uid <= ? "
                           "ORDER BY uid DESC LIMIT ?", [row.id, start, limit])
    return Found(total, [_meta(r) for r in rows], row.id)


async def unseen_counts(db: Database, counts: MailboxCounts, account_id: int
                        ) -> list[tuple[str, int]]:
    """(name, unseen messages) of every mailbox of the account (the folder list on
    every page; STATUS-like, RFC 9051 6.3.11): one statement on the mailboxes,
    and one count of those that changed since the last look."""
    return [(box.name, box.unseen) for box in await counts.of_account(db, account_id)]


# --- the index ----------------------------------------------------------------------------
def _header(message: email.message.Message, *names: str) -> str:
    """Header values with RFC 2047 encoded-words decoded (compat32 parsing: several
    times cheaper than the default policy, and the index needs only the text)."""
    values = []
    for name in names:
        for value in message.get_all(name) or []:
            try:
                values.append(str(email.header.make_header(email.header.decode_header(
                    str(value)))))
            except Exception:  # undecodable on hostile input: the raw text
                values.append(str(value))
    return " ".join(values)


def _text_part(message: email.message.Message) -> email.message.Message | None:
    html = None
    for part in message.walk():
        kind = part.get_content_type()
        if part.get_content_disposition() == "attachment":
            continue
        if kind == "text/plain":
            return part
        if kind == "text/html" and html is None:
            html = part
    return html


def _body_text(message: email.message.Message) -> str:
    part = _text_part(message)
    if part is None:
        return ""
    try:
        payload = part.get_payload(decode=True) or b""
    except Exception:  # broken transfer encoding
        return ""
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        content = payload.decode(charset, "replace")
    except LookupError:  # unknown charset
        content = payload.decode("utf-8", "replace")
    if part.get_content_type() == "text/html":
        content = _TAG.sub(" ", content)
    return _SPACE.sub(" ", content)[:BODY_CHARS]


def thread_root(references: str, in_reply_to: str, message_id: str) -> str:
    """The msg-id a conversation is known by (RFC 5322 3.6.4): the first of
    References (the thread's start), else the parent of In-Reply-To, else the
    message's own Message-ID; "" without any."""
    for field in (references, in_reply_to, message_id):
        found = _MSG_ID.search(field or "")
        if found:
            return found.group(0)
    return ""


def fold(text: str) -> str:
    """Text as the index stores it and terms are compared: case-folded (Unicode
    full case folding, so "Straße" and "STRASSE" are the same)."""
    return text.casefold()


def index_row(blob_id: str, data: bytes, internal_date: dt.datetime) -> dict[str, Any]:
    """The searchable texts of one message (decoded headers, text of the body), folded."""
    parsed = email.message_from_bytes(data)
    try:
        sent_at = email.utils.parsedate_to_datetime(_header(parsed, "Date"))
        if sent_at.tzinfo is None:
            sent_at = sent_at.replace(tzinfo=dt.UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        sent_at = internal_date
    return {"blob_id": blob_id, "sent_at": sent_at.astimezone(dt.UTC),
            "sender": fold(_header(parsed, "From", "Sender", "Reply-To")),
            "recipients": fold(_header(parsed, "To", "Cc", "Bcc")),
            "subject": fold(_header(parsed, "Subject")),
            "body": fold(_body_text(parsed))[:BODY_CHARS],
            "thread_root": thread_root(_header(parsed, "References"),
                                       _header(parsed, "In-Reply-To"),
                                       _header(parsed, "Message-ID"))}


async def conversation(db: Database, account_id: int, root: str, limit: int = 100
                       ) -> list[tuple[str, int, str]]:
    """(mailbox name, UID, blob id) of the account's indexed messages of the
    conversation ``root`` (``thread_root``), oldest first."""
    if not root:
        return []
    rows = await _rows(db, "SELECT mb.name, m.uid, m.blob_id FROM message_search s "
                           "JOIN messages m ON m.blob_id = s.blob_id "
                           "JOIN mailboxes mb ON mb.id = m.mailbox_id "
                           "WHERE s.thread_root = ? AND mb.account_id = ? "
                           "ORDER BY s.sent_at, m.uid LIMIT ?", [root, account_id, limit])
    return [(name, int(uid), blob_id) for name, uid, blob_id in rows]


async def index_mailbox(db: Database, mailbox_id: int, indexed: dict[int, int] | None = None
                        ) -> int:
    """Index the bodies of ``mailbox_id`` that have no search row yet; returns how many.

    ``indexed`` remembers, per mailbox, the UID up to which every message is
    indexed (UIDs only grow, RFC 9051 2.3.1.1, and mailbox ids are never
    reused), so a search looks only at mail that came in since the last one."""
    marks = {} if indexed is None else indexed
    after = marks.get(mailbox_id, 0)
    rows = await _rows(db, "SELECT m.uid, m.blob_id, m.internal_date, s.id FROM messages m "
                           "LEFT JOIN message_search s ON s.blob_id = m.blob_id "
                           "WHERE m.mailbox_id = ? AND m.uid > ?", [mailbox_id, after])
    newest = max((uid for uid, *_ in rows), default=after)
    missing = list({blob_id: (blob_id, when) for _uid, blob_id, when, found in rows
                    if found is None}.values())
    done = 0
    for start in range(0, len(missing), INDEX_CHUNK):
        chunk = missing[start:start + INDEX_CHUNK]
        bodies = await read_blobs(db, [blob_id for blob_id, _ in chunk])
        made = [index_row(blob_id, bodies[blob_id], _meta((0, 0, "", when, 0, 0, "")).
                          internal_date)
                for blob_id, when in chunk if blob_id in bodies]
        # Parsing is CPU work: the bench's 50,000 first-search would hold the loop.
        await asyncio.sleep(0)
        done += await _insert_index_rows(db, made)
    marks[mailbox_id] = newest
    return done


async def _insert_index_rows(db: Database, rows: Sequence[dict[str, Any]]) -> int:
    """Insert the rows not there yet (a concurrent search may have made some) and,
    on SQLite, their FTS entries: one multi-row statement each."""
    if not rows:
        return 0
    table = _search_table
    async with db.write() as session:
        existing = set((await session.scalars(select(table.c.blob_id).where(
            table.c.blob_id.in_([row["blob_id"] for row in rows])))).all())
        fresh = [row for row in rows if row["blob_id"] not in existing]
        if not fresh:
            return 0
        if db.is_sqlite:  # one writer at a time: nobody inserts between read and write
            result = await session.execute(insert(table).returning(
                table.c.id, table.c.blob_id, sort_by_parameter_order=True), fresh)
            ids = [row_id for row_id, _ in result.all()]
            await session.execute(text(
                "INSERT INTO message_search_fts (rowid, sender, recipients, subject, body) "
                "VALUES (:id, :sender, :recipients, :subject, :body)"),
                [{**row, "id": row_id} for row, row_id in zip(fresh, ids, strict=True)])
            return len(fresh)
        await session.execute(q.insert_ignoring_conflict(session, table), fresh)
        return len(fresh)


# --- searching ------------------------------------------------------------------------------
_COLUMNS = ("sender", "recipients", "subject", "body")


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _fts_phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _terms(query: SearchQuery) -> list[tuple[str, tuple[str, ...]]]:
    """(folded term, the columns it is looked for in) of every text part asked."""
    wanted = [(query.text, _COLUMNS), (query.sender, ("sender",)),
              (query.recipient, ("recipients",)), (query.subject, ("subject",)),
              (query.body, ("body",))]
    found = []
    for term, columns in wanted:
        # Control characters match nothing people type, and NUL ends an FTS5 string.
        term = fold(" ".join("".join(c if c.isprintable() else " " for c in term).split()))
        if term:
            found.append((term, columns))
    return found


def _conditions(query: SearchQuery, sqlite: bool) -> tuple[list[str], list[Any], str]:
    """SQL conditions and their values, and the FTS5 query for the rest (SQLite)."""
    where: list[str] = []
    values: list[Any] = []
    fts: list[str] = []
    for term, columns in _terms(query):
        if sqlite and len(term) >= 3:  # a trigram needs three characters
            scope = columns[0] if len(columns) == 1 else "{" + " ".join(columns) + "}"
            fts.append(f"{scope} : {_fts_phrase(term)}")
            continue
        # Both sides folded: a plain LIKE (pg_trgm's GIN indexes serve it too).
        where.append("(" + " OR ".join(f"s.{c} LIKE ? ESCAPE '\\'" for c in columns)
                     + ")")
        values.extend(_like(term) for _ in columns)
    if query.since is not None:
        where.append("s.sent_at >= ?")
        values.append(_bound(query.since, sqlite))
    if query.before is not None:
        where.append("s.sent_at < ?")
        values.append(_bound(query.before, sqlite))
    return where, values, " AND ".join(fts)


def _bound(day: dt.date, sqlite: bool) -> Any:
    moment = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    # SQLite stores the UtcDateTime columns as naive ISO text in UTC.
    return moment.replace(tzinfo=None).isoformat(sep=" ") if sqlite else moment


async def search(db: Database, account_id: int, mailbox: str, query: SearchQuery,
                 offset: int, limit: int, indexed: dict[int, int] | None = None,
                 counts: MailboxCounts | None = None) -> Found:
    """Messages of ``mailbox`` matching ``query``, newest first (indexes new mail first;
    ``indexed`` as for ``index_mailbox``; the mailbox's size from ``counts``)."""
    row = await mailbox_by_name(db, account_id, normalise(mailbox))
    if row is None:
        raise MailboxNotFound(f"no mailbox {mailbox!r}")
    mailbox_id = row.id
    await index_mailbox(db, mailbox_id, indexed)
    if not db.is_sqlite:
        return await _search_postgresql(db, mailbox_id, query, offset, limit)
    where, values, fts = _conditions(query, db.is_sqlite)
    source = "messages m JOIN message_search s ON s.blob_id = m.blob_id"
    source_values: list[Any] = []
    in_mailbox = "m.mailbox_id = ?"
    if fts:
        # FTS first, on its own: inside the join SQLite's planner would run the
        # MATCH (or probe an index with each hit) once per message row.
        hits = [row_id for row_id, in await _rows(
            db, "SELECT rowid FROM message_search_fts WHERE message_search_fts MATCH ?",
            [fts])]
        if not hits:
            return Found(0, [])
        in_box, _unseen = await (counts or MailboxCounts()).of_mailbox(
            db, mailbox_id, (row.uidvalidity, row.uidnext, row.highestmodseq))
        if len(hits) < in_box:
            # Fewer hits than messages: start from the hits (CROSS JOIN fixes the
            # order in SQLite), each found by its blob in the messages index.
            source = ("json_each(?) AS h CROSS JOIN message_search s ON s.id = h.value "
                      "CROSS JOIN messages m ON m.blob_id = s.blob_id")
            source_values = [json.dumps(hits)]
            in_mailbox = "+m.mailbox_id = ?"  # a filter: the blob index finds the rows
        else:
            # "+": a filter on the mailbox's rows, not index probes per message.
            where.insert(0, "+s.id IN (SELECT value FROM json_each(?))")
            values.insert(0, json.dumps(hits))
    condition = " AND ".join([in_mailbox, *where])
    parameters = [*source_values, mailbox_id, *values]
    (total,), = await _rows(db, f"SELECT COUNT(*) FROM {source} WHERE {condition}",
                            parameters)
    columns = ", ".join(f"m.{c.strip()}" for c in _META.split(","))
    rows = await _rows(db, f"SELECT {columns} FROM {source} WHERE {condition} "
                           "ORDER BY m.uid DESC LIMIT ? OFFSET ?", [*parameters, limit, offset])
    return Found(int(total), [_meta(r) for r in rows])


async def _search_postgresql(db: Database, mailbox_id: int, query: SearchQuery,
                             offset: int, limit: int) -> Found:
    """Every match's UID in one statement (the module docstring says why), then the
    page's rows by UID."""
    where, values, _ = _conditions(query, sqlite=False)
    if any(len(term) >= 3 for term, _ in _terms(query)):
        # A trigram index can find the texts: those first (an InitPlan, so the
        # planner cannot fold it into a walk of the mailbox), then their messages.
        sql = ("SELECT m.uid FROM messages m WHERE m.mailbox_id = ? AND m.blob_id = ANY("
               f"ARRAY(SELECT s.blob_id FROM message_search s WHERE {' AND '.join(where)})) "
               "ORDER BY m.uid DESC")
        parameters = [mailbox_id, *values]
    else:
        # Short terms or dates only: no index narrows the texts, the mailbox does.
        sql = ("SELECT m.uid FROM messages m JOIN message_search s ON s.blob_id = m.blob_id "
               f"WHERE {' AND '.join(['m.mailbox_id = ?', *where])} ORDER BY m.uid DESC")
        parameters = [mailbox_id, *values]
    uids = [uid for uid, in await _rows(db, sql, parameters)]
    shown = uids[offset:offset + limit]
    if not shown:
        return Found(len(uids), [])
    rows = await _rows(db, f"SELECT {_META} FROM messages WHERE mailbox_id = ? "
                           "AND uid = ANY(?) ORDER BY uid DESC", [mailbox_id, shown])
    return Found(len(uids), [_meta(r) for r in rows])
