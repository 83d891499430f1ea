"""Mailbox operations inside a transaction: LIST/STATUS counts, CREATE, DELETE, RENAME.

DELETE of a mailbox that has inferiors is refused (RFC 9051 6.3.4 allows a
server to refuse; we answer NO [HASCHILDREN]) instead of leaving a
``\\Noselect`` placeholder: every stored name is then a real, selectable
mailbox, and CREATE makes missing superiors as real mailboxes too.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, case, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import affected_rows
from mailserver.store import flags as fl
from mailserver.store import queries as q
from mailserver.store.model import (
    CannotDeleteInbox,
    InvalidMailboxName,
    MailboxExists,
    MailboxHasChildren,
    MailboxInfo,
    MailboxNotFound,
    MailboxStatus,
)
from mailserver.store.names import INBOX, SEPARATOR, is_inferior, parents

mb = q.mailboxes
m = q.messages


async def statuses(session: AsyncSession, account_id: int,
                   mailbox_id: int | None = None) -> list[MailboxStatus]:
    """Mailboxes with message, unseen, size and \\Deleted counts in one grouped query."""
    seen = m.c.system_flags.op("&")(fl.SEEN) != 0
    deleted = m.c.system_flags.op("&")(fl.DELETED) != 0
    stmt = (
        select(*q.MAILBOX_COLUMNS, func.count(m.c.id).label("n"),
               func.coalesce(func.sum(case((and_(m.c.id.is_not(None), ~seen), 1),
                                           else_=0)), 0).label("unseen"),
               func.coalesce(func.sum(m.c.size), 0).label("bytes"),
               func.coalesce(func.sum(case((deleted, 1), else_=0)), 0).label("deleted"))
        .select_from(mb.outerjoin(m, m.c.mailbox_id == mb.c.id))
        .where(mb.c.account_id == account_id)
        .group_by(*q.MAILBOX_COLUMNS).order_by(mb.c.name))
    if mailbox_id is not None:
        stmt = stmt.where(mb.c.id == mailbox_id)
    return [MailboxStatus(q.mailbox_info(r), int(r.n), int(r.unseen), int(r.bytes),
                          int(r.deleted))
            for r in await session.execute(stmt)]


async def _insert_mailbox(session: AsyncSession, account_id: int, name: str,
                          special_use: str | None, *, subscribed: bool = True) -> int:
    uidvalidity = await q.allocate_uidvalidity(session, account_id)
    return int(await session.scalar(insert(mb).values(
        account_id=account_id, name=name, special_use=special_use, uidvalidity=uidvalidity,
        uidnext=1, highestmodseq=1, subscribed=subscribed).returning(mb.c.id)))


async def create(session: AsyncSession, account_id: int, name: str,
                 special_use: str | None) -> MailboxInfo:
    """CREATE (RFC 9051 6.3.3), making missing superior names as well."""
    if await q.mailbox_by_name(session, account_id, name) is not None:
        raise MailboxExists(f"mailbox {name!r} exists")
    for parent in parents(name):
        if await q.mailbox_by_name(session, account_id, parent) is None:
            await _insert_mailbox(session, account_id, parent, None)
    mailbox_id = await _insert_mailbox(session, account_id, name, special_use)
    # A kept subscription of an earlier mailbox of that name is this one's now.
    await session.execute(delete(q.subscriptions).where(
        q.subscriptions.c.account_id == account_id, q.subscriptions.c.name == name))
    return q.mailbox_info(await q.mailbox_by_id(session, mailbox_id))


async def _children(session: AsyncSession, account_id: int, name: str) -> list[Any]:
    prefix = name + SEPARATOR
    rows = await session.execute(select(mb.c.id, mb.c.name).where(
        mb.c.account_id == account_id,
        func.substr(mb.c.name, 1, len(prefix)) == prefix))
    return [r for r in rows if is_inferior(r.name, name)]


async def delete_mailbox(session: AsyncSession, account_id: int, name: str) -> MailboxInfo:
    """DELETE (RFC 9051 6.3.4): refused for INBOX and for a mailbox with inferiors."""
    if name == INBOX:
        raise CannotDeleteInbox("INBOX cannot be deleted")
    row = await q.mailbox_by_name(session, account_id, name)
    if row is None:
        raise MailboxNotFound(f"no mailbox {name!r}")
    if await _children(session, account_id, name):
        raise MailboxHasChildren(f"mailbox {name!r} has inferior mailboxes")
    size = await session.scalar(
        select(func.coalesce(func.sum(m.c.size), 0)).where(m.c.mailbox_id == row.id))
    # Messages and expunged records go by ON DELETE CASCADE.
    await session.execute(delete(mb).where(mb.c.id == row.id))
    if row.subscribed:
        # RFC 3501 6.3.6: the subscription outlives the mailbox.
        await session.execute(q.insert_ignoring_conflict(session, q.subscriptions).values(
            account_id=account_id, name=name))
    await q.add_usage(session, account_id, -int(size or 0))
    return q.mailbox_info(row)


async def rename(session: AsyncSession, account_id: int, old: str,
                 new: str) -> list[MailboxInfo]:
    """RENAME (RFC 9051 6.3.6): inferiors move along; missing superiors are created.

    Renaming INBOX moves its messages into a new mailbox and leaves INBOX
    empty (its inferiors stay); the moved UIDs are VANISHED from INBOX.
    Returns the affected mailboxes after the rename.
    """
    row = await q.mailbox_by_name(session, account_id, old)
    if row is None:
        raise MailboxNotFound(f"no mailbox {old!r}")
    if await q.mailbox_by_name(session, account_id, new) is not None:
        raise MailboxExists(f"mailbox {new!r} exists")
    if new == INBOX or is_inferior(new, old):
        raise InvalidMailboxName(f"cannot rename {old!r} to {new!r}")
    for parent in parents(new):
        if await q.mailbox_by_name(session, account_id, parent) is None:
            await _insert_mailbox(session, account_id, parent, None)
    if old == INBOX:
        return [await _rename_inbox(session, row, new)]
    moved = [(row.id, new)] + [
        (child.id, new + child.name[len(old):])
        for child in await _children(session, account_id, old)]
    for mailbox_id, name in moved:
        await session.execute(update(mb).where(mb.c.id == mailbox_id).values(name=name))
    return [q.mailbox_info(await q.mailbox_by_id(session, i)) for i, _ in moved]


async def _rename_inbox(session: AsyncSession, inbox: Any, new: str) -> MailboxInfo:
    box = await q.lock_mailbox(session, inbox.id)
    new_id = await _insert_mailbox(session, box.account_id, new, None)
    # The new mailbox has a fresh UIDVALIDITY, so the messages may keep their UIDs.
    await session.execute(update(mb).where(mb.c.id == new_id).values(
        uidnext=box.uidnext, highestmodseq=box.highestmodseq, recent_uid=box.uidnext))
    uids = list((await session.scalars(select(m.c.uid).where(m.c.mailbox_id == box.id))).all())
    if uids:
        modseq = await q.bump_modseq(session, box.id)
        await session.execute(update(m).where(m.c.mailbox_id == box.id)
                              .values(mailbox_id=new_id))
        await q.record_expunged(session, box.id, uids, modseq)
    return q.mailbox_info(await q.mailbox_by_id(session, new_id))


async def set_subscribed(session: AsyncSession, account_id: int, name: str,
                         subscribed: bool) -> None:
    """SUBSCRIBE needs an existing mailbox (RFC 3501 6.3.6 lets a server
    check); UNSUBSCRIBE also drops a subscription that outlived its mailbox."""
    result = await session.execute(update(mb).where(
        mb.c.account_id == account_id, mb.c.name == name).values(subscribed=subscribed))
    if affected_rows(result) == 1:
        return
    if not subscribed:
        gone = await session.execute(delete(q.subscriptions).where(
            q.subscriptions.c.account_id == account_id, q.subscriptions.c.name == name))
        if affected_rows(gone) == 1:
            return
    raise MailboxNotFound(f"no mailbox {name!r}")


async def recent_count(session: AsyncSession, mailbox_id: int) -> int:
    """Messages no session has claimed as \\Recent yet (STATUS RECENT)."""
    first = select(mb.c.recent_uid).where(mb.c.id == mailbox_id).scalar_subquery()
    return int(await session.scalar(select(func.count()).select_from(m).where(
        m.c.mailbox_id == mailbox_id, m.c.uid >= first)) or 0)


async def orphan_subscriptions(session: AsyncSession, account_id: int) -> list[str]:
    """Subscribed names whose mailbox no longer exists."""
    return list((await session.scalars(select(q.subscriptions.c.name).where(
        q.subscriptions.c.account_id == account_id).order_by(q.subscriptions.c.name))).all())


async def claim_recent(session: AsyncSession, mailbox_id: int, up_to: int,
                       claim: bool) -> int | None:
    """The mailbox's first unclaimed \\Recent UID; with ``claim`` every UID
    below ``up_to`` becomes claimed (RFC 3501 2.3.2: recent to this session
    only). None when the mailbox is gone."""
    for _ in range(5):
        found = await session.scalar(select(mb.c.recent_uid).where(mb.c.id == mailbox_id))
        if found is None:
            return None
        first = int(found)
        if not claim or first >= up_to:
            return first
        # Conditional on the value read: a concurrent claimer (PostgreSQL,
        # READ COMMITTED) makes it match nothing, and we read again.
        result = await session.execute(update(mb).where(
            mb.c.id == mailbox_id, mb.c.recent_uid == first).values(recent_uid=up_to))
        if affected_rows(result) == 1:
            return first
    return up_to  # lost every race: nothing is recent to this session


async def resolve(session: AsyncSession, account_id: int, name: str) -> Any:
    row = await q.mailbox_by_name(session, account_id, name)
    if row is None:
        raise MailboxNotFound(f"no mailbox {name!r}")
    return row
