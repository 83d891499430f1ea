"""The part of the directory an import plans against, read in one query per table.

Plain frozen values, so the planner is a pure function and its tests build a
``DirectoryState`` by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from directory.model import GroupKind, MemberRole, Role, Status
from directory.schema import AccountRow, AddressRow, GroupMemberRow, GroupRow, ParentLinkRow

MANAGED_KINDS = (GroupKind.CLASS, GroupKind.COURSE)  # the group kinds an import maintains


@dataclass(frozen=True)
class AccountState:
    """An account that came from an import (it has an external id)."""

    id: int
    external_id: str
    login: str
    first_name: str
    last_name: str
    display_name: str
    role: Role
    status: Status


@dataclass(frozen=True)
class GroupState:
    """A class or course group with all its members (imported or added by hand)."""

    id: int
    name: str
    display_name: str
    kind: GroupKind
    members: Mapping[int, MemberRole] = field(default_factory=dict)  # account id -> role


@dataclass(frozen=True)
class DirectoryState:
    accounts: Mapping[str, AccountState] = field(default_factory=dict)  # by external id
    groups: Mapping[str, GroupState] = field(default_factory=dict)  # class/course, by name
    # every local part in use -> "account", "group" or "alias"
    addresses: Mapping[str, str] = field(default_factory=dict)
    # parent account id -> child account ids (links of imported parents)
    children: Mapping[int, frozenset[int]] = field(default_factory=dict)


async def load_state(session: AsyncSession) -> DirectoryState:
    accounts = {
        row.external_id: AccountState(
            id=row.id, external_id=row.external_id, login=row.login,
            first_name=row.first_name, last_name=row.last_name,
            display_name=row.display_name, role=Role(row.role), status=Status(row.status))
        for row in (await session.execute(
            select(AccountRow.id, AccountRow.external_id, AccountRow.login,
                   AccountRow.first_name, AccountRow.last_name, AccountRow.display_name,
                   AccountRow.role, AccountRow.status)
            .where(AccountRow.external_id.is_not(None)))).all()
    }
    kinds = [k.value for k in MANAGED_KINDS]
    members: dict[int, dict[int, MemberRole]] = {}
    for group_id, account_id, role in (await session.execute(
            select(GroupMemberRow.group_id, GroupMemberRow.account_id, GroupMemberRow.role)
            .join(GroupRow, GroupRow.id == GroupMemberRow.group_id)
            .where(GroupRow.kind.in_(kinds)))).all():
        members.setdefault(group_id, {})[account_id] = MemberRole(role)
    groups = {
        row.name: GroupState(id=row.id, name=row.name, display_name=row.display_name,
                             kind=GroupKind(row.kind), members=members.get(row.id, {}))
        for row in (await session.execute(
            select(GroupRow.id, GroupRow.name, GroupRow.display_name, GroupRow.kind)
            .where(GroupRow.kind.in_(kinds)))).all()
    }
    addresses = {
        local_part: "alias" if is_alias else "account" if account_id is not None else "group"
        for local_part, account_id, is_alias in (await session.execute(
            select(AddressRow.local_part, AddressRow.account_id, AddressRow.is_alias))).all()
    }
    imported_ids = {a.id for a in accounts.values()}
    children: dict[int, set[int]] = {}
    for parent_id, child_id in (await session.execute(
            select(ParentLinkRow.parent_id, ParentLinkRow.child_id))).all():
        if parent_id in imported_ids:
            children.setdefault(parent_id, set()).add(child_id)
    return DirectoryState(accounts=accounts, groups=groups, addresses=addresses,
                          children={p: frozenset(c) for p, c in children.items()})
