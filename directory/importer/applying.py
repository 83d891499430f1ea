"""Applying: carry out an ``ImportPlan`` on the caller's session (one transaction).

Only the plan's changes are written, so rows the plan leaves alone keep their
``updated_at``.  Runs inside ``Database.write()``: any failure rolls back all.

Groups go through ``directory.repository`` one by one (a few dozen per file).
Accounts, memberships and parent links come in thousands, so they are written
in batches (one multi-row INSERT per table instead of a flush per row); the
planner has checked every login against the addresses read in this same
transaction, and the database's unique keys back that up.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TypeVar

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from directory import repository as repo
from directory.importer.planning import ImportPlan
from directory.importer.state import DirectoryState
from directory.login_names import unique_login
from directory.model import Status
from directory.schema import (
    AccountRow,
    AddressRow,
    GroupMemberRow,
    GroupRow,
    ParentLinkRow,
)

CHUNK = 500  # ids per IN (...) list, well below every backend's parameter limit
T = TypeVar("T")


async def apply_plan(session: AsyncSession, plan: ImportPlan, state: DirectoryState,
                     password_hashes: Mapping[str, str]) -> None:
    """Write ``plan`` (made against ``state``, read in this transaction).

    ``password_hashes`` maps new accounts' external ids to their password hashes;
    accounts without one get no password.
    """
    account_ids = {ext: a.id for ext, a in state.accounts.items()}
    group_ids = await _apply_groups(session, plan, state)
    await _apply_account_changes(session, plan, account_ids)
    account_ids.update(await _insert_accounts(session, plan, password_hashes))
    await _apply_memberships(session, plan, group_ids, account_ids)
    await _apply_children(session, plan, state, account_ids)


async def _apply_groups(session: AsyncSession, plan: ImportPlan,
                        state: DirectoryState) -> dict[str, int]:
    """Remove, rename and create groups; returns group name (after the import) -> id."""
    group_ids = {name: g.id for name, g in state.groups.items()}
    for removal in plan.groups_removed:
        await session.execute(delete(AddressRow).where(AddressRow.group_id == removal.group_id))
        await session.execute(delete(GroupMemberRow).where(
            GroupMemberRow.group_id == removal.group_id))
        await session.execute(delete(GroupRow).where(GroupRow.id == removal.group_id))
    # Renames can form chains and cycles (5a -> 6a while 6a -> 7a): every renamed
    # group first takes a free temporary name, then its new one.
    renamed = [(await repo.group_row_by_id(session, c.group_id), c)
               for c in plan.groups_changed]
    taken = await repo.taken_local_parts(session) if renamed else set()
    for row, _change in renamed:
        temporary = unique_login(f"import-rename-{row.id}", taken)
        taken.add(temporary)
        await repo.rename_group(session, row, temporary)
    for row, change in renamed:
        await repo.rename_group(session, row, change.new_name)
        row.display_name = change.new_display_name
        group_ids[change.new_name] = row.id
    for group in plan.groups_created:
        row = await repo.insert_group(session, name=group.name,
                                      display_name=group.display_name, kind=group.kind)
        group_ids[group.name] = row.id
    return group_ids


async def _apply_account_changes(session: AsyncSession, plan: ImportPlan,
                                 account_ids: Mapping[str, int]) -> None:
    """Names and roles, restored leavers and new leavers: one SELECT, one flush."""
    touched = {u.external_id for u in plan.updated} | {r.external_id for r in plan.restored} \
        | {v.external_id for v in plan.leavers}
    rows: dict[int, AccountRow] = {}
    for ids in _chunks(sorted(account_ids[ext] for ext in touched)):
        for row in (await session.scalars(select(AccountRow).where(AccountRow.id.in_(ids)))):
            rows[row.id] = row
    for account in plan.updated:
        row = rows[account_ids[account.external_id]]
        for change in account.changes:
            setattr(row, change.field, change.new)
    for restore in plan.restored:
        row = rows[account_ids[restore.external_id]]
        row.status = Status.ACTIVE.value
        row.deletion_date = None
    for leaver in plan.leavers:
        row = rows[account_ids[leaver.external_id]]
        row.status = Status.LEAVER.value
        row.deletion_date = leaver.deletion_date
    await session.flush()


async def _insert_accounts(session: AsyncSession, plan: ImportPlan,
                           password_hashes: Mapping[str, str]) -> dict[str, int]:
    rows = [AccountRow(login=n.login, display_name=n.display_name, role=n.role.value,
                       first_name=n.first_name, last_name=n.last_name,
                       external_id=n.external_id, status=Status.ACTIVE.value,
                       password_hash=password_hashes.get(n.external_id, ""))
            for n in plan.created]
    if not rows:
        return {}
    session.add_all(rows)
    await session.flush()  # one batched INSERT ... RETURNING for the ids
    await session.execute(insert(AddressRow), [
        {"local_part": row.login, "account_id": row.id, "is_alias": False} for row in rows])
    return {new.external_id: row.id for new, row in zip(plan.created, rows, strict=True)}


async def _apply_memberships(session: AsyncSession, plan: ImportPlan,
                             group_ids: Mapping[str, int],
                             account_ids: Mapping[str, int]) -> None:
    removed: dict[int, list[int]] = defaultdict(list)
    for change in plan.memberships:
        if change.role is None:
            removed[group_ids[change.group]].append(account_ids[change.external_id])
    for group_id, ids in removed.items():
        for chunk in _chunks(ids):
            await session.execute(delete(GroupMemberRow).where(
                GroupMemberRow.group_id == group_id, GroupMemberRow.account_id.in_(chunk)))
    # Kept memberships whose role changes are updated; the rest are new.
    existing = {(g, a) for g, a in await _membership_keys(session, plan, group_ids,
                                                          account_ids)}
    new_rows = []
    for change in plan.memberships:
        if change.role is None:
            continue
        key = (group_ids[change.group], account_ids[change.external_id])
        if key in existing:
            await session.execute(update(GroupMemberRow).where(
                GroupMemberRow.group_id == key[0], GroupMemberRow.account_id == key[1])
                .values(role=change.role.value))
        else:
            new_rows.append({"group_id": key[0], "account_id": key[1],
                             "role": change.role.value})
    if new_rows:
        await session.execute(insert(GroupMemberRow), new_rows)


async def _membership_keys(session: AsyncSession, plan: ImportPlan,
                           group_ids: Mapping[str, int],
                           account_ids: Mapping[str, int]) -> list[tuple[int, int]]:
    """The (group, account) pairs among the plan's additions that exist already."""
    groups = sorted({group_ids[c.group] for c in plan.memberships if c.role is not None})
    accounts = {account_ids[c.external_id] for c in plan.memberships if c.role is not None}
    keys: list[tuple[int, int]] = []
    for chunk in _chunks(groups):
        result = await session.execute(
            select(GroupMemberRow.group_id, GroupMemberRow.account_id)
            .where(GroupMemberRow.group_id.in_(chunk)))
        keys.extend((g, a) for g, a in result.all() if a in accounts)
    return keys


async def _apply_children(session: AsyncSession, plan: ImportPlan, state: DirectoryState,
                          account_ids: Mapping[str, int]) -> None:
    new_links: list[dict[str, int]] = []
    for change in plan.children:
        parent_id = account_ids[change.parent]
        wanted = {account_ids[c] for c in change.children} | set(change.other_child_ids)
        current = state.children.get(parent_id, frozenset())
        for chunk in _chunks(sorted(current - wanted)):
            await session.execute(delete(ParentLinkRow).where(
                ParentLinkRow.parent_id == parent_id, ParentLinkRow.child_id.in_(chunk)))
        new_links.extend({"parent_id": parent_id, "child_id": c}
                         for c in sorted(wanted - current))
    if new_links:
        await session.execute(insert(ParentLinkRow), new_links)


def _chunks(items: Sequence[T] | Iterable[T]) -> Iterator[list[T]]:
    items = list(items)
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]
