"""SQL building blocks shared by the store's operations (storage layer).

Everything here runs inside a caller's write or read transaction and uses
Core statements on columns (no ORM objects per row).  Counters are advanced
with ``UPDATE ... RETURNING`` (SQLite >= 3.35, PostgreSQL), which is atomic
per row on both backends; lock order inside a transaction is always
mail_accounts -> mailboxes -> messages, so PostgreSQL writers do not deadlock.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, bindparam, case, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from directory.db import affected_rows
from directory.schema import AccountRow, table_of
from mailserver.schema import (
    ExpungedRow,
    MailAccountRow,
    MailboxRow,
    MessageBlobRow,
    MessageRow,
    OutboundRow,
    SubscriptionRow,
)
from mailserver.store.model import AccountNotFound, MailboxInfo, MailboxNotFound
from mailserver.store.names import DEFAULT_MAILBOXES

accounts_t = table_of(AccountRow)
mail_accounts = table_of(MailAccountRow)
mailboxes = table_of(MailboxRow)
messages = table_of(MessageRow)
expunged = table_of(ExpungedRow)
blobs = table_of(MessageBlobRow)
outbound = table_of(OutboundRow)
subscriptions = table_of(SubscriptionRow)

MAILBOX_COLUMNS = (mailboxes.c.id, mailboxes.c.account_id, mailboxes.c.name,
                   mailboxes.c.special_use, mailboxes.c.uidvalidity, mailboxes.c.uidnext,
                   mailboxes.c.highestmodseq, mailboxes.c.subscribed)


def mailbox_info(row: Any) -> MailboxInfo:
    return MailboxInfo(id=row.id, account_id=row.account_id, name=row.name,
                       special_use=row.special_use, uidvalidity=row.uidvalidity,
                       uidnext=row.uidnext, highestmodseq=row.highestmodseq,
                       subscribed=bool(row.subscribed))


def insert_ignoring_conflict(session: AsyncSession, table: Table) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` in the session's dialect."""
    dialect = session.bind.dialect.name  # type: ignore[union-attr]
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing()


async def account_exists(session: AsyncSession, account_id: int) -> bool:
    return await session.scalar(
        select(accounts_t.c.id).where(accounts_t.c.id == account_id)) is not None


async def ensure_account(session: AsyncSession, account_id: int) -> bool:
    """Create the account's mail state and default folders if missing; True if created."""
    if await session.scalar(select(mail_accounts.c.account_id)
                            .where(mail_accounts.c.account_id == account_id)) is not None:
        return False
    if not await account_exists(session, account_id):
        raise AccountNotFound(f"no account {account_id}")
    # ON CONFLICT: on PostgreSQL a concurrent login and delivery may both get here.
    result = await session.execute(insert_ignoring_conflict(session, mail_accounts).values(
        account_id=account_id, used_bytes=0, last_uidvalidity=0))
    if affected_rows(result) != 1:
        return False
    first = await allocate_uidvalidity(session, account_id, len(DEFAULT_MAILBOXES))
    await session.execute(insert(mailboxes), [
        {"account_id": account_id, "name": name, "special_use": special_use,
         "uidvalidity": first + i, "uidnext": 1, "highestmodseq": 1, "subscribed": True}
        for i, (name, special_use) in enumerate(DEFAULT_MAILBOXES)])
    return True


async def ensure_accounts(session: AsyncSession, account_ids: Sequence[int]) -> list[int]:
    """``ensure_account`` for many accounts known to exist, in a constant number of
    statements (a delivery batch's first-time recipients: a digest run or a class
    mail reaching a whole school's new INBOXes); returns those created here."""
    ids = sorted(set(account_ids))
    created: list[int] = []
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        have = set(await session.scalars(select(mail_accounts.c.account_id).where(
            mail_accounts.c.account_id.in_(part))))
        new = [account_id for account_id in part if account_id not in have]
        if not new:
            continue
        # ON CONFLICT: on PostgreSQL a concurrent login may create one meanwhile.
        inserted = await session.scalars(
            insert_ignoring_conflict(session, mail_accounts).values(
                [{"account_id": a, "used_bytes": 0, "last_uidvalidity": 0} for a in new])
            .returning(mail_accounts.c.account_id))
        mine = sorted(inserted)
        if not mine:
            continue
        n = len(DEFAULT_MAILBOXES)
        now = int(time.time())
        last = mail_accounts.c.last_uidvalidity
        rows = await session.execute(
            update(mail_accounts).where(mail_accounts.c.account_id.in_(mine))
            .values(last_uidvalidity=case((last + 1 > now, last + n), else_=now + n - 1))
            .returning(mail_accounts.c.account_id, mail_accounts.c.last_uidvalidity))
        await session.execute(insert(mailboxes), [
            {"account_id": account_id, "name": name, "special_use": special_use,
             "uidvalidity": int(new_last) - n + 1 + i, "uidnext": 1, "highestmodseq": 1,
             "subscribed": True}
            for account_id, new_last in rows
            for i, (name, special_use) in enumerate(DEFAULT_MAILBOXES)])
        created.extend(mine)
    return created


async def allocate_uidvalidity(session: AsyncSession, account_id: int, n: int = 1) -> int:
    """The first of ``n`` fresh UIDVALIDITY values (RFC 9051 2.3.1.1).

    Based on the clock (so values stay unique even if the counter row is ever
    lost) but strictly above every value this account has used, so a deleted
    and re-created folder never gets its old UIDVALIDITY back.
    """
    now = int(time.time())
    last = mail_accounts.c.last_uidvalidity
    new_last = await session.scalar(
        update(mail_accounts).where(mail_accounts.c.account_id == account_id)
        .values(last_uidvalidity=case((last + 1 > now, last + n), else_=now + n - 1))
        .returning(mail_accounts.c.last_uidvalidity))
    if new_last is None:
        raise AccountNotFound(f"no mail state for account {account_id}")
    return int(new_last) - n + 1


async def allocate_uids(session: AsyncSession, mailbox_id: int, n: int) -> tuple[int, int]:
    """Reserve ``n`` UIDs and one new MODSEQ: returns (first uid, modseq)."""
    row = (await session.execute(
        update(mailboxes).where(mailboxes.c.id == mailbox_id)
        .values(uidnext=mailboxes.c.uidnext + n,
                highestmodseq=mailboxes.c.highestmodseq + 1)
        .returning(mailboxes.c.uidnext, mailboxes.c.highestmodseq))).one_or_none()
    if row is None:
        raise MailboxNotFound(f"mailbox {mailbox_id} vanished")
    return int(row.uidnext) - n, int(row.highestmodseq)


async def bump_modseq(session: AsyncSession, mailbox_id: int) -> int:
    """A new MODSEQ for a change in the mailbox (RFC 7162 3.1.1: strictly increasing)."""
    modseq = await session.scalar(
        update(mailboxes).where(mailboxes.c.id == mailbox_id)
        .values(highestmodseq=mailboxes.c.highestmodseq + 1)
        .returning(mailboxes.c.highestmodseq))
    if modseq is None:
        raise MailboxNotFound(f"mailbox {mailbox_id} vanished")
    return int(modseq)


async def add_usage(session: AsyncSession, account_id: int, delta: int) -> None:
    if delta:
        await session.execute(
            update(mail_accounts).where(mail_accounts.c.account_id == account_id)
            .values(used_bytes=mail_accounts.c.used_bytes + delta))


# Built once: every RCPT's quota answer (when not cached) runs it.
_USAGE_AND_ROLE = (
    select(accounts_t.c.role, func.coalesce(mail_accounts.c.used_bytes, 0).label("used"))
    .select_from(accounts_t.outerjoin(
        mail_accounts, mail_accounts.c.account_id == accounts_t.c.id))
    .where(accounts_t.c.id == bindparam("account_id")))


_USAGES_AND_ROLES = (
    select(accounts_t.c.id, accounts_t.c.role,
           func.coalesce(mail_accounts.c.used_bytes, 0).label("used"))
    .select_from(accounts_t.outerjoin(
        mail_accounts, mail_accounts.c.account_id == accounts_t.c.id))
    .where(accounts_t.c.id.in_(bindparam("account_ids", expanding=True))))


async def usages_and_roles(session: AsyncSession,
                           account_ids: Sequence[int]) -> dict[int, tuple[int, str]]:
    """``usage_and_role`` of many accounts in one query; missing accounts are left out."""
    rows = await session.execute(_USAGES_AND_ROLES, {"account_ids": list(account_ids)})
    return {row.id: (int(row.used), row.role) for row in rows}


async def usage_and_role(session: AsyncSession, account_id: int) -> tuple[int, str]:
    """(bytes used, role) of an account; 0 used before its first message."""
    row = (await session.execute(_USAGE_AND_ROLE, {"account_id": account_id})).one_or_none()
    if row is None:
        raise AccountNotFound(f"no account {account_id}")
    return int(row.used), row.role


async def put_blob(session: AsyncSession, blob_id: str, data: bytes) -> None:
    """Store a body once; an existing row with the same SHA-256 is the same body."""
    await session.execute(insert_ignoring_conflict(session, blobs).values(
        id=blob_id, size=len(data), data=data, created_at=dt.datetime.now(dt.UTC)))


async def mailbox_by_name(session: AsyncSession, account_id: int, name: str) -> Any:
    return (await session.execute(
        select(*MAILBOX_COLUMNS).where(mailboxes.c.account_id == account_id,
                                       mailboxes.c.name == name))).one_or_none()


async def mailbox_by_id(session: AsyncSession, mailbox_id: int) -> Any:
    row = (await session.execute(
        select(*MAILBOX_COLUMNS).where(mailboxes.c.id == mailbox_id))).one_or_none()
    if row is None:
        raise MailboxNotFound(f"no mailbox {mailbox_id}")
    return row


CHUNK = 5000  # bound parameters per statement stay far below both backends' limits


def chunks(uids: Sequence[int]) -> list[list[int]]:
    ordered = sorted(set(uids))
    return [ordered[i:i + CHUNK] for i in range(0, len(ordered), CHUNK)]


async def lock_mailbox(session: AsyncSession, mailbox_id: int) -> Any:
    """The mailbox row, locked for this transaction on PostgreSQL (SQLite has one writer).

    Serialises read-modify-write of the same mailbox's messages (STORE, EXPUNGE).
    """
    row = (await session.execute(
        select(*MAILBOX_COLUMNS).where(mailboxes.c.id == mailbox_id)
        .with_for_update())).one_or_none()
    if row is None:
        raise MailboxNotFound(f"no mailbox {mailbox_id}")
    return row


async def record_expunged(session: AsyncSession, mailbox_id: int,
                          uids: Sequence[int], modseq: int) -> None:
    if uids:
        await session.execute(insert(expunged), [
            {"mailbox_id": mailbox_id, "uid": uid, "modseq": modseq} for uid in uids])
