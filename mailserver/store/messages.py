"""Message operations inside a transaction: snapshot, fetch, COPY, MOVE.

Each changing operation takes one new MODSEQ for the whole operation (RFC 7162
3.1.1 lets messages changed together share it).  STORE and EXPUNGE are
group-committed with other sessions' writes: ``mailserver.store.flag_batch``
and ``mailserver.store.write_queue``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from mailserver.store import flags as fl
from mailserver.store import queries as q
from mailserver.store.model import (
    Changes,
    MessageMeta,
    MessageState,
)

m = q.messages


async def snapshot(session: AsyncSession, mailbox_id: int) -> list[MessageState]:
    """Every message's (uid, flags, modseq) in UID order: one query, tuples only."""
    result = await session.execute(
        select(m.c.uid, m.c.system_flags, m.c.keywords, m.c.modseq)
        .where(m.c.mailbox_id == mailbox_id).order_by(m.c.uid))
    decode = fl.decode
    return [MessageState(uid, decode(bits, kw), modseq) for uid, bits, kw, modseq in result]


async def fetch(session: AsyncSession, mailbox_id: int,
                uids: Sequence[int]) -> list[MessageMeta]:
    out: list[MessageMeta] = []
    for chunk in q.chunks(uids):
        result = await session.execute(
            select(m.c.uid, m.c.system_flags, m.c.keywords, m.c.internal_date, m.c.size,
                   m.c.modseq, m.c.blob_id)
            .where(m.c.mailbox_id == mailbox_id, m.c.uid.in_(chunk)).order_by(m.c.uid))
        out.extend(MessageMeta(r.uid, fl.decode(r.system_flags, r.keywords), r.internal_date,
                               r.size, r.modseq, r.blob_id) for r in result)
    return out


async def insert_messages(session: AsyncSession, mailbox_id: int, account_id: int,
                          rows: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """Insert ``rows`` (blob_id, size, internal_date, system_flags, keywords) with the
    mailbox's next UIDs; returns (first uid, modseq).  Updates the quota counter."""
    first, modseq = await q.allocate_uids(session, mailbox_id, len(rows))
    await session.execute(insert(m), [
        {**row, "mailbox_id": mailbox_id, "uid": first + i, "modseq": modseq}
        for i, row in enumerate(rows)])
    await q.add_usage(session, account_id, sum(row["size"] for row in rows))
    return first, modseq


async def _rows(session: AsyncSession, mailbox_id: int, uids: Sequence[int] | None,
                *columns: Any, where: Any = None) -> list[Any]:
    base = select(m.c.uid, *columns).where(m.c.mailbox_id == mailbox_id,
                                           true() if where is None else where)
    if uids is None:
        return list((await session.execute(base.order_by(m.c.uid))).all())
    out: list[Any] = []
    for chunk in q.chunks(uids):
        out.extend((await session.execute(base.where(m.c.uid.in_(chunk))
                                          .order_by(m.c.uid))).all())
    return out


async def copy_rows(session: AsyncSession, mailbox_id: int,
                    uids: Sequence[int]) -> list[Any]:
    """Source rows for COPY/MOVE in UID order (RFC 4315: pairs follow source order)."""
    return await _rows(session, mailbox_id, uids, m.c.blob_id, m.c.size, m.c.internal_date,
                       m.c.system_flags, m.c.keywords)


async def insert_copies(session: AsyncSession, dest: Any,
                        rows: Sequence[Any]) -> list[tuple[int, int]]:
    """Insert copies of ``rows`` into ``dest``: the COPYUID pairs (RFC 4315 3)."""
    if not rows:
        return []
    first, _ = await insert_messages(session, dest.id, dest.account_id, [
        {"blob_id": r.blob_id, "size": r.size, "internal_date": r.internal_date,
         "system_flags": r.system_flags, "keywords": r.keywords} for r in rows])
    return [(r.uid, first + i) for i, r in enumerate(rows)]


async def remove(session: AsyncSession, box: Any, rows: Sequence[Any]) -> int:
    """Delete messages, remember them as VANISHED, free their quota; returns the modseq."""
    uids = [r.uid for r in rows]
    modseq = await q.bump_modseq(session, box.id)
    for chunk in q.chunks(uids):
        await session.execute(delete(m).where(m.c.mailbox_id == box.id, m.c.uid.in_(chunk)))
    await q.record_expunged(session, box.id, uids, modseq)
    await q.add_usage(session, box.account_id, -sum(r.size for r in rows))
    return modseq


async def changes_since(session: AsyncSession, mailbox_id: int, modseq: int) -> Changes:
    """CHANGEDSINCE and VANISHED (EARLIER) data (RFC 7162 3.1.4.1, 3.2.10)."""
    box = await q.mailbox_by_id(session, mailbox_id)
    result = await session.execute(
        select(m.c.uid, m.c.system_flags, m.c.keywords, m.c.modseq)
        .where(m.c.mailbox_id == mailbox_id, m.c.modseq > modseq).order_by(m.c.uid))
    changed = [MessageState(uid, fl.decode(bits, kw), ms) for uid, bits, kw, ms in result]
    e = q.expunged
    vanished = list((await session.scalars(
        select(e.c.uid).where(e.c.mailbox_id == mailbox_id, e.c.modseq > modseq)
        .order_by(e.c.uid))).all())
    return Changes(changed, vanished, box.highestmodseq)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
