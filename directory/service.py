"""The directory service: accounts, groups, aliases and who may contact whom.

One short transaction per call; every protocol (SMTP, IMAP, Matrix) and the
admin CLI goes through here.  Returns frozen domain values, raises
``DirectoryError`` subclasses.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from directory import repository as repo
from directory.addresses import RESERVED_LOCAL_PARTS, is_valid_local_part, normalise_domain
from directory.changes import DirectoryChanges
from directory.db import Database
from directory.login_names import login_base, unique_login
from directory.model import (
    Account,
    Group,
    GroupKind,
    GroupMember,
    InvalidName,
    MemberRole,
    NotFound,
    Role,
    Status,
)
from directory.passwords import PasswordHasher
from directory.policy import ContactTarget, RolePolicy, TargetKind, Verdict
from directory.schema import AccountRow, AddressRow, GroupMemberRow, GroupRow, ParentLinkRow


@dataclass(frozen=True)
class Resolved:
    """What a local address stands for: exactly one of account or group."""

    local_part: str
    account: Account | None = None
    group: Group | None = None


@dataclass(frozen=True)
class AliasEntry:
    local_part: str
    owner: str  # login or group name
    owner_kind: str  # "account" | "group"


def _check_local_part(name: str) -> str:
    name = name.strip().lower()
    if not is_valid_local_part(name):
        raise InvalidName(f"{name!r} is not a valid address local part "
                          "(a-z, 0-9, '.', '-', '_'; not at the ends)")
    if name in RESERVED_LOCAL_PARTS:
        raise InvalidName(f"{name!r} is reserved for the server itself")
    return name


class Directory:
    def __init__(self, db: Database, hasher: PasswordHasher, policy: RolePolicy, *,
                 domain: str, extra_domains: Sequence[str] = (),
                 partner_domains: frozenset[str] = frozenset()) -> None:
        self.db = db
        self.hasher = hasher
        self.policy = policy
        self.domain = normalise_domain(domain)
        self.local_domains = frozenset({self.domain, *map(normalise_domain, extra_domains)})
        self.partner_domains = frozenset(map(normalise_domain, partner_domains))
        #: Told after every committed change callers may have cached (not passwords).
        self.changes = DirectoryChanges()

    @contextlib.asynccontextmanager
    async def _changing(self) -> AsyncIterator[AsyncSession]:
        """A write transaction; once it committed, ``changes`` hears of it."""
        async with self.db.write() as session:
            yield session
        self.changes.changed()

    def address_of(self, local_part: str) -> str:
        return f"{local_part}@{self.domain}"

    def is_local_domain(self, domain: str) -> bool:
        return normalise_domain(domain) in self.local_domains

    # --- accounts ---------------------------------------------------------
    async def create_account(self, *, role: Role, first_name: str = "", last_name: str = "",
                             login: str | None = None, display_name: str | None = None,
                             external_id: str | None = None,
                             password: str | None = None) -> Account:
        password_hash = await self.hasher.hash(password) if password else ""
        async with self._changing() as session:
            if login is None:
                login = unique_login(login_base(first_name, last_name),
                                     await repo.taken_local_parts(session))
            login = _check_local_part(login)
            name = display_name or f"{first_name} {last_name}".strip() or login
            row = await repo.insert_account(
                session, login=login, display_name=name, role=role, first_name=first_name,
                last_name=last_name, external_id=external_id, password_hash=password_hash)
            return repo.account_from_row(row)

    async def get_account(self, login: str) -> Account:
        async with self.db.read() as session:
            return repo.account_from_row(await repo.account_row(session, login=login))

    async def get_account_by_id(self, account_id: int) -> Account:
        return await repo.account_by_id(self.db, account_id)

    async def list_accounts(self, *, role: Role | None = None,
                            status: Status | None = None) -> list[Account]:
        async with self.db.read() as session:
            rows = await repo.list_account_rows(session, role=role, status=status)
            return [repo.account_from_row(r) for r in rows]

    async def credentials_for(self, login: str) -> tuple[Account, str] | None:
        return await repo.credentials_by_login(self.db, login)

    async def set_password(self, login: str, password: str) -> None:
        password_hash = await self.hasher.hash(password)
        async with self.db.write() as session:
            row = await repo.account_row(session, login=login)
            row.password_hash = password_hash

    async def replace_password_hash(self, login: str, old_hash: str, new_hash: str) -> bool:
        """Swap the hash only if it is still ``old_hash`` (a concurrent passwd wins)."""
        async with self.db.write() as session:
            row = await repo.account_row(session, login=login)
            if row.password_hash != old_hash:
                return False
            row.password_hash = new_hash
            return True

    async def set_status(self, login: str, status: Status,
                         deletion_date: dt.date | None = None) -> Account:
        async with self._changing() as session:
            row = await repo.account_row(session, login=login)
            row.status = status.value
            row.deletion_date = deletion_date if status is Status.LEAVER else None
            await session.flush()
            return repo.account_from_row(row)

    async def set_role(self, login: str, role: Role) -> Account:
        async with self._changing() as session:
            row = await repo.account_row(session, login=login)
            row.role = role.value
            await session.flush()
            return repo.account_from_row(row)

    async def delete_account(self, login: str) -> None:
        """Delete an account and (by cascading foreign keys) everything it owns."""
        async with self._changing() as session:
            row = await repo.account_row(session, login=login)
            await session.delete(row)

    async def purge_leavers(self, today: dt.date) -> list[str]:
        """Delete leavers whose deletion date has passed; returns their logins."""
        async with self._changing() as session:
            rows = (await session.scalars(select(AccountRow).where(
                AccountRow.status == Status.LEAVER.value,
                AccountRow.deletion_date <= today))).all()
            logins = [r.login for r in rows]
            if rows:
                ids = [r.id for r in rows]
                await session.execute(delete(AddressRow).where(AddressRow.account_id.in_(ids)))
                await session.execute(delete(AccountRow).where(AccountRow.id.in_(ids)))
            return logins

    # --- groups -----------------------------------------------------------
    async def create_group(self, name: str, *, kind: GroupKind = GroupKind.CUSTOM,
                           display_name: str | None = None,
                           members_may_post: bool = False) -> Group:
        name = _check_local_part(name)
        async with self._changing() as session:
            row = await repo.insert_group(session, name=name, display_name=display_name or name,
                                          kind=kind, members_may_post=members_may_post)
            return repo.group_from_row(row)

    async def get_group(self, name: str) -> Group:
        async with self.db.read() as session:
            return repo.group_from_row(await repo.group_row(session, name))

    async def list_groups(self, kind: GroupKind | None = None) -> list[Group]:
        async with self.db.read() as session:
            query = select(GroupRow).order_by(GroupRow.name)
            if kind is not None:
                query = query.where(GroupRow.kind == kind.value)
            return [repo.group_from_row(r) for r in (await session.scalars(query)).all()]

    async def group_members(self, name: str) -> list[GroupMember]:
        async with self.db.read() as session:
            group = await repo.group_row(session, name)
            return await repo.members_of(session, group.id)

    async def add_member(self, group_name: str, login: str,
                         role: MemberRole = MemberRole.MEMBER) -> None:
        async with self._changing() as session:
            group = await repo.group_row(session, group_name)
            account = await repo.account_row(session, login=login)
            await repo.set_membership(session, group.id, account.id, role)

    async def remove_member(self, group_name: str, login: str) -> None:
        async with self._changing() as session:
            group = await repo.group_row(session, group_name)
            account = await repo.account_row(session, login=login)
            if not await repo.remove_membership(session, group.id, account.id):
                raise NotFound(f"{login} is not a member of {group_name}")

    async def groups_of(self, login: str) -> list[tuple[Group, MemberRole]]:
        async with self.db.read() as session:
            account = await repo.account_row(session, login=login)
            memberships = await repo.memberships_of(session, account.id)
            if not memberships:
                return []
            rows = (await session.scalars(
                select(GroupRow).where(GroupRow.id.in_(memberships)).order_by(GroupRow.name)
            )).all()
            return [(repo.group_from_row(r), MemberRole(memberships[r.id])) for r in rows]

    # --- aliases and addresses ------------------------------------------------
    async def add_alias(self, alias: str, target: str) -> AliasEntry:
        """Add ``alias`` for the account or group whose address is ``target``."""
        alias = _check_local_part(alias)
        async with self._changing() as session:
            address = await session.get(AddressRow, target.strip().lower())
            if address is None:
                raise NotFound(f"no account or group {target!r}")
            await repo.insert_alias(session, alias, account_id=address.account_id,
                                    group_id=address.group_id)
        kind = "account" if address.account_id else "group"
        return AliasEntry(alias, target.strip().lower(), kind)

    async def delete_alias(self, alias: str) -> None:
        async with self._changing() as session:
            await repo.delete_alias(session, alias.strip().lower())

    async def list_aliases(self) -> list[AliasEntry]:
        async with self.db.read() as session:
            rows = (await session.scalars(select(AddressRow).where(
                AddressRow.is_alias.is_(True)).order_by(AddressRow.local_part))).all()
            out = []
            for row in rows:
                if row.account_id is not None:
                    owner = (await repo.account_row(session, account_id=row.account_id)).login
                    out.append(AliasEntry(row.local_part, owner, "account"))
                else:
                    owner = (await repo.group_row_by_id(session, row.group_id)).name
                    out.append(AliasEntry(row.local_part, owner, "group"))
            return out

    async def resolve(self, local_part: str) -> Resolved | None:
        """What ``local_part`` at one of our domains stands for, or None."""
        local_part = local_part.lower()
        # One round trip (every RCPT on a cache miss lands here): the address row
        # joined to whichever of account or group owns it.
        async with self.db.read() as session:
            row = (await session.execute(
                select(AccountRow, GroupRow)
                .select_from(AddressRow)
                .outerjoin(AccountRow, AccountRow.id == AddressRow.account_id)
                .outerjoin(GroupRow, GroupRow.id == AddressRow.group_id)
                .where(AddressRow.local_part == local_part))).one_or_none()
            if row is None:
                return None
            account, group = row
            if account is not None:
                return Resolved(local_part, account=repo.account_from_row(account))
            return Resolved(local_part, group=repo.group_from_row(group))

    async def addresses_of(self, login: str) -> set[str]:
        """Local parts the account may send as: its login and its aliases."""
        async with self.db.read() as session:
            account = await repo.account_row(session, login=login)
            rows = await session.scalars(select(AddressRow.local_part).where(
                AddressRow.account_id == account.id))
            return set(rows.all())

    # --- parents ------------------------------------------------------------------
    async def link_parent(self, parent_login: str, child_login: str) -> None:
        async with self._changing() as session:
            parent = await repo.account_row(session, login=parent_login)
            child = await repo.account_row(session, login=child_login)
            await repo.link_parent(session, parent.id, child.id)

    async def unlink_parent(self, parent_login: str, child_login: str) -> None:
        async with self._changing() as session:
            parent = await repo.account_row(session, login=parent_login)
            child = await repo.account_row(session, login=child_login)
            link = await session.get(ParentLinkRow, (parent.id, child.id))
            if link is None:
                raise NotFound(f"{child_login} is not a child of {parent_login}")
            await session.delete(link)

    async def children_of(self, parent_login: str) -> list[Account]:
        async with self.db.read() as session:
            parent = await repo.account_row(session, login=parent_login)
            rows = (await session.scalars(
                select(AccountRow).join(ParentLinkRow, ParentLinkRow.child_id == AccountRow.id)
                .where(ParentLinkRow.parent_id == parent.id).order_by(AccountRow.login))).all()
            return [repo.account_from_row(r) for r in rows]

    async def parents_of(self, child_ids: Iterable[int]) -> dict[int, list[Account]]:
        """The linked parents of each child (by account id), in one query."""
        wanted = sorted(set(child_ids))
        found: dict[int, list[Account]] = {}
        async with self.db.read() as session:
            for start in range(0, len(wanted), 500):
                rows = (await session.execute(
                    select(ParentLinkRow.child_id, AccountRow)
                    .join(AccountRow, ParentLinkRow.parent_id == AccountRow.id)
                    .where(ParentLinkRow.child_id.in_(wanted[start:start + 500]))
                    .order_by(AccountRow.login))).all()
                for child_id, row in rows:
                    found.setdefault(child_id, []).append(repo.account_from_row(row))
        return found

    async def group_counts(self) -> dict[str, int]:
        """How many groups each account is in, by login (one query)."""
        async with self.db.read() as session:
            result = await session.execute(
                select(AccountRow.login, func.count(GroupMemberRow.group_id))
                .join(GroupMemberRow, GroupMemberRow.account_id == AccountRow.id)
                .group_by(AccountRow.login))
            return {login: count for login, count in result.all()}

    # --- policy -------------------------------------------------------------------
    async def may_contact(self, sender: Account, address: str) -> Verdict:
        """Role policy for ``sender`` writing to ``address`` (mail or chat)."""
        target = await self.contact_target(sender, address)
        if target is None:
            return Verdict(False, f"no such recipient: {address}")
        return self.policy.may_contact(sender.role, target)

    async def contact_target(self, sender: Account, address: str) -> ContactTarget | None:
        local, _, domain = address.rpartition("@")
        domain = normalise_domain(domain)
        if domain not in self.local_domains:
            return ContactTarget(TargetKind.REMOTE, domain=domain,
                                 is_partner_school=domain in self.partner_domains)
        async with self.db.read() as session:
            address_row = await session.get(AddressRow, local.lower())
            if address_row is None:
                return None
            if address_row.account_id is not None:
                recipient = await repo.account_row(session, account_id=address_row.account_id)
                is_child = await repo.is_parent_of(session, sender.id, recipient.id)
                return ContactTarget(TargetKind.ACCOUNT, role=Role(recipient.role),
                                     is_child_of_sender=is_child)
            group = await repo.group_row_by_id(session, address_row.group_id)
            memberships = await repo.memberships_of(session, sender.id)
            membership = memberships.get(group.id)
            return ContactTarget(
                TargetKind.GROUP, members_may_post=group.members_may_post,
                sender_membership=MemberRole(membership) if membership else None)
