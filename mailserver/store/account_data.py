"""One account's mail as a whole: read out for an export, erased, expired (issue 17).

The mail store's part of the school's data-protection use cases (GDPR Art. 15,
17, 20; retention), which ``conf`` composes with the messenger's and the
directory's parts:

- ``messages``: every message of a mailbox, page by page (an export streams
  them; a 20,000-message account is never in memory at once);
- ``erase``: the account's mailboxes, settings and Sieve scripts, and every body only it
  referenced, with that body's search text (a body shared with another
  account's copy is the other person's mail too and stays);
- ``expire``: messages in special-use mailboxes (``\\Trash``, ``\\Junk``,
  RFC 6154) older than a cutoff, removed like an EXPUNGE so IMAP sessions hear
  of it (RFC 9051 7.5.1) and the quota counter stays exact.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass

from sqlalchemy import delete, exists, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import affected_rows
from directory.schema import table_of
from mailserver.schema import (
    MailSettingsRow,
    MessageSearchRow,
    SieveScriptRow,
    VacationReplyRow,
)
from mailserver.store import flags as fl
from mailserver.store import messages as msgs
from mailserver.store import queries as q
from mailserver.store.service import MailStore

PAGE = 200


@dataclass(frozen=True)
class MailboxEntry:
    id: int
    name: str
    special_use: str | None
    messages: int


@dataclass(frozen=True)
class ExportedMessage:
    uid: int
    flags: frozenset[str]
    internal_date: dt.datetime
    data: bytes


@dataclass(frozen=True)
class MailErasure:
    mailboxes: int
    messages: int
    bodies: int


async def forget_bodies(session: AsyncSession, candidates: Collection[str]) -> int:
    """Delete the bodies among ``candidates`` that no message and no queue row refers
    to any more, with their search rows (and, on SQLite, their FTS5 entries: the
    index is external-content, so it must be told the old values)."""
    b, s = q.blobs, table_of(MessageSearchRow)
    gone = 0
    ids = sorted(candidates)
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        orphans = list((await session.scalars(select(b.c.id).where(
            b.c.id.in_(chunk), ~exists().where(q.messages.c.blob_id == b.c.id),
            ~exists().where(q.outbound.c.blob_id == b.c.id)))).all())
        if not orphans:
            continue
        if session.bind.dialect.name == "sqlite":  # type: ignore[union-attr]
            rows = (await session.execute(select(
                s.c.id, s.c.sender, s.c.recipients, s.c.subject, s.c.body)
                .where(s.c.blob_id.in_(orphans)))).all()
            for row in rows:
                await session.execute(text(
                    "INSERT INTO message_search_fts (message_search_fts, rowid, sender, "
                    "recipients, subject, body) VALUES ('delete', :id, :sender, :recipients, "
                    ":subject, :body)"), dict(row._mapping))
        await session.execute(delete(MessageSearchRow).where(
            MessageSearchRow.blob_id.in_(orphans)))
        gone += affected_rows(await session.execute(delete(b).where(b.c.id.in_(orphans))))
    return gone


class MailAccountData:
    """The account-wide operations on one school's mail store."""

    def __init__(self, store: MailStore) -> None:
        self.store = store
        self.db = store.db

    async def mailboxes(self, account_id: int) -> list[MailboxEntry]:
        mb, m = q.mailboxes, q.messages
        async with self.db.read() as session:
            counts = select(m.c.mailbox_id, func.count().label("n")).group_by(
                m.c.mailbox_id).subquery()
            rows = (await session.execute(
                select(mb.c.id, mb.c.name, mb.c.special_use, counts.c.n)
                .outerjoin(counts, counts.c.mailbox_id == mb.c.id)
                .where(mb.c.account_id == account_id).order_by(mb.c.name))).all()
        return [MailboxEntry(i, name, use, n or 0) for i, name, use, n in rows]

    async def messages(self, mailbox_id: int, *, page: int = PAGE,
                       ) -> AsyncIterator[ExportedMessage]:
        """Every message of the mailbox in UID order, ``page`` bodies per read."""
        m, b = q.messages, q.blobs
        after = 0
        while True:
            async with self.db.read() as session:
                rows = (await session.execute(
                    select(m.c.uid, m.c.system_flags, m.c.keywords, m.c.internal_date, b.c.data)
                    .join(b, b.c.id == m.c.blob_id)
                    .where(m.c.mailbox_id == mailbox_id, m.c.uid > after)
                    .order_by(m.c.uid).limit(page))).all()
            for uid, bits, keywords, when, data in rows:
                yield ExportedMessage(uid, fl.decode(bits, keywords), when, bytes(data))
            if len(rows) < page:
                return
            after = rows[-1][0]

    async def erase(self, account_id: int) -> MailErasure:
        """Everything of the account's mail (Art. 17); other people's copies stay."""
        mb, m = q.mailboxes, q.messages
        async with self.db.write() as session:
            box_ids = list((await session.scalars(
                select(mb.c.id).where(mb.c.account_id == account_id))).all())
            bodies = set((await session.scalars(select(m.c.blob_id).where(
                m.c.mailbox_id.in_(select(mb.c.id).where(mb.c.account_id == account_id)))
            )).all())
            messages = affected_rows(await session.execute(
                delete(m).where(m.c.mailbox_id.in_(box_ids)))) if box_ids else 0
            await session.execute(delete(q.expunged).where(q.expunged.c.mailbox_id.in_(box_ids)))
            await session.execute(delete(mb).where(mb.c.account_id == account_id))
            await session.execute(delete(q.subscriptions).where(
                q.subscriptions.c.account_id == account_id))
            await session.execute(delete(MailSettingsRow).where(
                MailSettingsRow.account_id == account_id))
            await session.execute(delete(VacationReplyRow).where(
                VacationReplyRow.account_id == account_id))
            await session.execute(delete(SieveScriptRow).where(
                SieveScriptRow.account_id == account_id))
            await session.execute(delete(q.mail_accounts).where(
                q.mail_accounts.c.account_id == account_id))
            gone = await forget_bodies(session, bodies)
        return MailErasure(len(box_ids), messages, gone)

    async def expire(self, special_use: str, before: dt.datetime) -> int:
        """Remove messages older than ``before`` (internal date) from every mailbox
        with ``special_use``; returns how many."""
        mb, m = q.mailboxes, q.messages
        async with self.db.read() as session:
            boxes = (await session.execute(select(mb.c.id, mb.c.account_id).where(
                mb.c.special_use == special_use))).all()
        removed = 0
        for box_id, account_id in boxes:
            async with self.db.write() as session:
                box = await q.lock_mailbox(session, box_id)
                rows = (await session.execute(select(m.c.uid, m.c.size, m.c.blob_id).where(
                    m.c.mailbox_id == box_id, m.c.internal_date < before))).all()
                if not rows:
                    continue
                modseq = await msgs.remove(session, box, rows)
                await forget_bodies(session, {r.blob_id for r in rows})
            self.store.announce(account_id, box_id, modseq)
            removed += len(rows)
        return removed
