"""Directory queries on one SQLAlchemy session (storage layer).

Every function takes the session of the caller's transaction, so the bulk
importer can apply a whole file in one transaction while the ``Directory``
service opens a short transaction per call.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from directory.addresses import RESERVED_LOCAL_PARTS
from directory.db import Database, affected_rows
from directory.model import (
    Account,
    AlreadyExists,
    Group,
    GroupKind,
    GroupMember,
    MemberRole,
    NotFound,
    Role,
    Status,
)
from directory.schema import AccountRow, AddressRow, GroupMemberRow, GroupRow, ParentLinkRow


def account_from_row(row: AccountRow) -> Account:
    return Account(
        id=row.id, login=row.login, display_name=row.display_name, role=Role(row.role),
        status=Status(row.status), external_id=row.external_id, first_name=row.first_name,
        last_name=row.last_name, deletion_date=row.deletion_date, created_at=row.created_at,
        updated_at=row.updated_at,
    )


_ACCOUNT_COLUMNS = ("id", "login", "display_name", "role", "status", "external_id",
                    "first_name", "last_name", "deletion_date", "created_at", "updated_at")


async def account_by_id(db: Database, account_id: int) -> Account:
    """One account in one statement (``Database.read_rows``: no ORM session, no
    BEGIN/COMMIT); every page of the webmail asks this.  The columns' own result
    conversions (dates on SQLite, UTC zones) are applied as SQLAlchemy would."""
    found = await _account_where(db, "id", account_id)
    if found is None:
        raise NotFound(f"no such account: {account_id}")
    return found[0]


async def credentials_by_login(db: Database, login: str) -> tuple[Account, str] | None:
    """The account and its password hash for a login, in one statement like
    :func:`account_by_id` (every IMAP, SMTP and webmail login asks this)."""
    return await _account_where(db, "login", login)


async def _account_where(db: Database, column: str, value: object) -> tuple[Account, str] | None:
    names = (*_ACCOUNT_COLUMNS, "password_hash")
    # One row by its key or unique login: small enough for the caller's thread.
    rows = await db.read_rows_small(f"SELECT {', '.join(names)} FROM accounts "
                              f"WHERE {column} = ?", [value])
    if not rows:
        return None
    dialect = db.read_engine.dialect
    columns = AccountRow.__table__.c
    values: dict[str, Any] = {}
    for name, raw in zip(names, rows[0], strict=True):
        processor = _processor(columns[name].type, dialect)
        values[name] = processor(raw) if processor is not None and raw is not None else raw
    account = Account(
        id=values["id"], login=values["login"], display_name=values["display_name"],
        role=Role(values["role"]), status=Status(values["status"]),
        external_id=values["external_id"], first_name=values["first_name"],
        last_name=values["last_name"], deletion_date=values["deletion_date"],
        created_at=values["created_at"], updated_at=values["updated_at"])
    return account, values["password_hash"]


def _processor(column_type: Any, dialect: Any) -> Any:
    return column_type.dialect_impl(dialect).result_processor(dialect, None)


def group_from_row(row: GroupRow) -> Group:
    return Group(id=row.id, name=row.name, display_name=row.display_name,
                 kind=GroupKind(row.kind), members_may_post=row.members_may_post)


async def local_part_taken(session: AsyncSession, local_part: str) -> bool:
    return await session.get(AddressRow, local_part) is not None


async def taken_local_parts(session: AsyncSession) -> set[str]:
    """Local parts no new account or group may get (in use, or reserved)."""
    return set((await session.scalars(select(AddressRow.local_part))).all()) | set(
        RESERVED_LOCAL_PARTS)


async def insert_account(session: AsyncSession, *, login: str, display_name: str, role: Role,
                         first_name: str = "", last_name: str = "",
                         external_id: str | None = None, password_hash: str = "") -> AccountRow:
    if await local_part_taken(session, login):
        raise AlreadyExists(f"address {login!r} is already in use")
    if external_id is not None and await session.scalar(
            select(AccountRow.id).where(AccountRow.external_id == external_id)) is not None:
        raise AlreadyExists(f"external id {external_id!r} is already in use")
    row = AccountRow(login=login, display_name=display_name, role=role.value,
                     first_name=first_name, last_name=last_name, external_id=external_id,
                     password_hash=password_hash, status=Status.ACTIVE.value)
    session.add(row)
    await session.flush()
    session.add(AddressRow(local_part=login, account_id=row.id, is_alias=False))
    await session.flush()
    return row


async def account_row(session: AsyncSession, *, account_id: int | None = None,
                      login: str | None = None, external_id: str | None = None) -> AccountRow:
    if account_id is not None:
        row = await session.get(AccountRow, account_id)
    elif login is not None:
        row = await session.scalar(select(AccountRow).where(AccountRow.login == login.lower()))
    else:
        row = await session.scalar(
            select(AccountRow).where(AccountRow.external_id == external_id))
    if row is None:
        raise NotFound(f"no such account: {account_id or login or external_id}")
    return row


async def list_account_rows(session: AsyncSession, *, role: Role | None = None,
                            status: Status | None = None) -> Sequence[AccountRow]:
    query = select(AccountRow).order_by(AccountRow.login)
    if role is not None:
        query = query.where(AccountRow.role == role.value)
    if status is not None:
        query = query.where(AccountRow.status == status.value)
    return (await session.scalars(query)).all()


async def insert_group(session: AsyncSession, *, name: str, display_name: str,
                       kind: GroupKind, members_may_post: bool = False) -> GroupRow:
    if await local_part_taken(session, name):
        raise AlreadyExists(f"address {name!r} is already in use")
    row = GroupRow(name=name, display_name=display_name, kind=kind.value,
                   members_may_post=members_may_post)
    session.add(row)
    await session.flush()
    session.add(AddressRow(local_part=name, group_id=row.id, is_alias=False))
    await session.flush()
    return row


async def group_row(session: AsyncSession, name: str) -> GroupRow:
    row = await session.scalar(select(GroupRow).where(GroupRow.name == name.lower()))
    if row is None:
        raise NotFound(f"no such group: {name}")
    return row


async def group_row_by_id(session: AsyncSession, group_id: int | None) -> GroupRow:
    """The group a foreign key points at (``None``: the reference is missing)."""
    row = None if group_id is None else await session.get(GroupRow, group_id)
    if row is None:
        raise NotFound(f"no such group: #{group_id}")
    return row


async def rename_group(session: AsyncSession, row: GroupRow, new_name: str) -> None:
    """Give a group a new address, keeping its id (and so its members and room)."""
    if new_name == row.name:
        return
    if await local_part_taken(session, new_name):
        raise AlreadyExists(f"address {new_name!r} is already in use")
    address = await session.get(AddressRow, row.name)
    if address is not None:
        await session.delete(address)
    await session.flush()
    row.name = new_name
    session.add(AddressRow(local_part=new_name, group_id=row.id, is_alias=False))
    await session.flush()


async def group_member_rows(session: AsyncSession,
                            group_id: int) -> list[tuple[AccountRow, str]]:
    result = await session.execute(
        select(AccountRow, GroupMemberRow.role)
        .join(GroupMemberRow, GroupMemberRow.account_id == AccountRow.id)
        .where(GroupMemberRow.group_id == group_id)
        .order_by(AccountRow.login)
    )
    return [(a, r) for a, r in result.all()]


async def set_membership(session: AsyncSession, group_id: int, account_id: int,
                         role: MemberRole) -> None:
    row = await session.get(GroupMemberRow, (group_id, account_id))
    if row is None:
        session.add(GroupMemberRow(group_id=group_id, account_id=account_id, role=role.value))
    else:
        row.role = role.value
    await session.flush()


async def remove_membership(session: AsyncSession, group_id: int, account_id: int) -> bool:
    result = await session.execute(delete(GroupMemberRow).where(
        GroupMemberRow.group_id == group_id, GroupMemberRow.account_id == account_id))
    return affected_rows(result) > 0


async def memberships_of(session: AsyncSession, account_id: int) -> dict[int, str]:
    result = await session.execute(select(GroupMemberRow.group_id, GroupMemberRow.role)
                                   .where(GroupMemberRow.account_id == account_id))
    return {group_id: role for group_id, role in result.all()}


async def insert_alias(session: AsyncSession, local_part: str, *,
                       account_id: int | None = None, group_id: int | None = None) -> None:
    if await local_part_taken(session, local_part):
        raise AlreadyExists(f"address {local_part!r} is already in use")
    session.add(AddressRow(local_part=local_part, account_id=account_id, group_id=group_id,
                           is_alias=True))
    await session.flush()


async def delete_alias(session: AsyncSession, local_part: str) -> None:
    row = await session.get(AddressRow, local_part)
    if row is None or not row.is_alias:
        raise NotFound(f"no such alias: {local_part}")
    await session.delete(row)
    await session.flush()


async def link_parent(session: AsyncSession, parent_id: int, child_id: int) -> None:
    if await session.get(ParentLinkRow, (parent_id, child_id)) is None:
        session.add(ParentLinkRow(parent_id=parent_id, child_id=child_id))
        await session.flush()


async def set_children(session: AsyncSession, parent_id: int, child_ids: Iterable[int]) -> None:
    wanted = set(child_ids)
    current = set((await session.scalars(
        select(ParentLinkRow.child_id).where(ParentLinkRow.parent_id == parent_id))).all())
    for child_id in current - wanted:
        await session.execute(delete(ParentLinkRow).where(
            ParentLinkRow.parent_id == parent_id, ParentLinkRow.child_id == child_id))
    for child_id in wanted - current:
        session.add(ParentLinkRow(parent_id=parent_id, child_id=child_id))
    await session.flush()


async def is_parent_of(session: AsyncSession, parent_id: int, child_id: int) -> bool:
    return await session.get(ParentLinkRow, (parent_id, child_id)) is not None


async def members_of(session: AsyncSession, group_id: int) -> list[GroupMember]:
    return [GroupMember(account_from_row(a), MemberRole(r))
            for a, r in await group_member_rows(session, group_id)]


async def mark_leaver(session: AsyncSession, row: AccountRow, deletion_date: dt.date) -> None:
    row.status = Status.LEAVER.value
    row.deletion_date = deletion_date
    await session.flush()
