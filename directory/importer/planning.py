"""Planning: import records + the directory's current state -> an ``ImportPlan``.

A pure function: no I/O, no clock (``today`` is an argument), the same
inputs always give the same plan.  The plan lists every change the import
makes, so a dry run prints it and the apply step only carries it out.

Rules (keyed by external id; accounts without one are never touched):

* a record without an account becomes a new account whose login is made from
  the name (or the local part of its e-mail at one of the school's domains,
  if free); a login once given never changes;
* names and role follow the file; a leaver who is back is restored;
* an imported account missing from the file becomes a leaver with a
  deletion date ``today + grace_days`` (a leaver keeps the date it has);
* class and course groups are named after the class/course (``5a``,
  ``ma-lk1``).  At the school-year rollover a class group follows its pupils:
  when most of the pupils of group ``5a`` (of those still at school) are now
  in class ``6a``, the group is renamed ``6a`` (keeping its id, so its list
  and room keep their history) and a new ``5a`` is made for the new pupils;
* pupils are members of their class and courses, teachers (and staff) owners
  of the classes and courses their rows name; imported accounts' memberships
  in class/course groups that the file no longer gives are removed;
* a class or course group no longer in the file loses its imported members;
  it is deleted when that leaves it empty, and moved aside (``10a-old``)
  when another group needs its name but it still has members added by hand;
* parents are linked to the pupils their ``parent_of`` names.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from directory.addresses import RESERVED_LOCAL_PARTS, is_valid_local_part
from directory.importer.errors import InvalidImportFile, RowError
from directory.importer.records import GroupRef, ImportRecord
from directory.importer.state import AccountState, DirectoryState, GroupState
from directory.login_names import login_base, unique_login
from directory.model import GroupKind, MemberRole, Role, Status

OWNER_ROLES = frozenset({Role.TEACHER, Role.STAFF})


@dataclass(frozen=True)
class PlanOptions:
    today: dt.date
    leaver_grace_days: int = 90
    local_domains: frozenset[str] = frozenset()


@dataclass(frozen=True)
class NewAccount:
    external_id: str
    login: str
    role: Role
    first_name: str
    last_name: str
    display_name: str
    class_name: str = ""  # as the file writes it, for the passwords list


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: str
    new: str


@dataclass(frozen=True)
class AccountUpdate:
    external_id: str
    login: str
    changes: tuple[FieldChange, ...]


@dataclass(frozen=True)
class ClassMove:
    external_id: str
    login: str
    old_class: str | None
    new_class: str | None


@dataclass(frozen=True)
class Leaver:
    external_id: str
    login: str
    deletion_date: dt.date


@dataclass(frozen=True)
class Restore:
    external_id: str
    login: str


@dataclass(frozen=True)
class NewGroup:
    name: str
    display_name: str
    kind: GroupKind


@dataclass(frozen=True)
class GroupChange:
    """A new name for an existing group (rollover, or moved aside)."""

    group_id: int
    old_name: str
    new_name: str
    old_display_name: str
    new_display_name: str


@dataclass(frozen=True)
class GroupRemoval:
    group_id: int
    name: str


@dataclass(frozen=True)
class MembershipChange:
    group: str  # the group's name after this import
    external_id: str
    role: MemberRole | None  # None: the membership is removed


@dataclass(frozen=True)
class ChildrenChange:
    parent: str  # external id
    children: tuple[str, ...]  # external ids from the file
    other_child_ids: tuple[int, ...] = ()  # links to accounts made by hand: kept


@dataclass(frozen=True)
class ImportPlan:
    created: tuple[NewAccount, ...] = ()
    updated: tuple[AccountUpdate, ...] = ()
    moved: tuple[ClassMove, ...] = ()
    leavers: tuple[Leaver, ...] = ()
    restored: tuple[Restore, ...] = ()
    groups_created: tuple[NewGroup, ...] = ()
    groups_changed: tuple[GroupChange, ...] = ()
    groups_removed: tuple[GroupRemoval, ...] = ()
    memberships: tuple[MembershipChange, ...] = ()
    children: tuple[ChildrenChange, ...] = ()
    unchanged: int = 0  # accounts in the file that need no change at all

    @property
    def is_empty(self) -> bool:
        return not any((self.created, self.updated, self.moved, self.leavers, self.restored,
                        self.groups_created, self.groups_changed, self.groups_removed,
                        self.memberships, self.children))


@dataclass
class _Groups:
    """Where each class and course of the file lives, and what happens to the rest."""

    target: dict[str, GroupState | None] = field(default_factory=dict)  # name -> group/new
    display: dict[str, GroupRef] = field(default_factory=dict)
    kind: dict[str, GroupKind] = field(default_factory=dict)
    removed: list[GroupState] = field(default_factory=list)
    kept_orphans: list[GroupState] = field(default_factory=list)
    changes: list[GroupChange] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def plan_import(records: list[ImportRecord], state: DirectoryState,
                options: PlanOptions) -> ImportPlan:
    """The changes that make the directory match ``records``; ``InvalidImportFile`` when
    the file cannot be applied to this directory (a group name already in use)."""
    imported_ids = {a.id: a.external_id for a in state.accounts.values()}
    groups = _plan_groups(records, state, imported_ids)
    if groups.errors:
        raise InvalidImportFile(groups.errors)
    taken = (set(state.addresses) | set(groups.target) | {c.new_name for c in groups.changes}
             | RESERVED_LOCAL_PARTS)
    in_file = {r.external_id for r in records}

    created: list[NewAccount] = []
    updated: list[AccountUpdate] = []
    moved: list[ClassMove] = []
    restored: list[Restore] = []
    unchanged = 0
    old_class = _current_classes(state, imported_ids)
    for record in records:
        account = state.accounts.get(record.external_id)
        if account is None:
            login = _new_login(record, taken, options.local_domains)
            taken.add(login)
            created.append(NewAccount(
                record.external_id, login, record.role, record.first_name, record.last_name,
                record.display_name, record.classes[0].display_name if record.classes else ""))
            continue
        changes = _field_changes(account, record)
        if changes:
            updated.append(AccountUpdate(record.external_id, account.login, changes))
        is_restored = account.status is Status.LEAVER
        if is_restored:
            restored.append(Restore(record.external_id, account.login))
        was_in = old_class.get(record.external_id)
        is_moved = (record.role is Role.PUPIL and not is_restored
                    and was_in != record.class_name)
        if is_moved:
            moved.append(ClassMove(record.external_id, account.login, was_in,
                                   record.class_name))
        if not (changes or is_restored or is_moved):
            unchanged += 1

    deletion_date = options.today + dt.timedelta(days=options.leaver_grace_days)
    leavers = [Leaver(a.external_id, a.login, deletion_date)
               for a in sorted(state.accounts.values(), key=lambda a: a.login)
               if a.external_id not in in_file and a.status is not Status.LEAVER]

    return ImportPlan(
        created=tuple(created), updated=tuple(updated), moved=tuple(moved),
        leavers=tuple(leavers), restored=tuple(restored),
        groups_created=tuple(NewGroup(name, groups.display[name].display_name,
                                      groups.kind[name])
                             for name, group in sorted(groups.target.items())
                             if group is None),
        groups_changed=tuple(groups.changes),
        groups_removed=tuple(GroupRemoval(g.id, g.name) for g in groups.removed),
        memberships=tuple(_membership_changes(records, groups, imported_ids)),
        children=tuple(_children_changes(records, state, imported_ids)),
        unchanged=unchanged,
    )


# --- groups -------------------------------------------------------------------------

def _plan_groups(records: list[ImportRecord], state: DirectoryState,
                 imported_ids: dict[int, str]) -> _Groups:
    out = _Groups()
    first_line: dict[str, int] = {}
    for record in records:
        for kind, refs in ((GroupKind.CLASS, record.classes), (GroupKind.COURSE,
                                                                record.courses)):
            for ref in refs:
                out.display.setdefault(ref.name, ref)
                out.kind.setdefault(ref.name, kind)
                first_line.setdefault(ref.name, record.line)

    successors = _class_successors(records, state, imported_ids)
    assigned: set[int] = set()
    for name in sorted(out.kind):  # classes renamed from their predecessors first
        predecessor = successors.get(name)
        if out.kind[name] is GroupKind.CLASS and predecessor is not None:
            out.target[name] = predecessor
            assigned.add(predecessor.id)
    for name, kind in sorted(out.kind.items()):
        if name in out.target:
            continue
        same = state.groups.get(name)
        if same is not None and same.kind is kind and same.id not in assigned:
            out.target[name] = same
            assigned.add(same.id)
        else:
            out.target[name] = None  # a new group

    orphans = {g.name: g for g in state.groups.values() if g.id not in assigned}
    evicted: set[str] = set()
    for name, group in sorted(out.target.items()):
        holder = state.addresses.get(name)
        if holder is None or (group is not None and group.name == name):
            continue
        if holder == "group" and name in state.groups:
            if name in orphans:
                evicted.add(name)
            continue  # held by a group that is renamed in this import
        holder = holder if holder in ("account", "alias") else "group"
        what = {"account": "an account", "alias": "an alias"}.get(holder, "another group")
        label = "class" if out.kind[name] is GroupKind.CLASS else "course"
        out.errors.append(RowError.of(first_line[name], f"{label}_address_taken",
                                      value=out.display[name].display_name, name=name,
                                      holder=holder, holder_text=what))

    taken = set(state.addresses) | set(out.target) | RESERVED_LOCAL_PARTS
    for name, orphan in sorted(orphans.items()):
        by_hand = [i for i in orphan.members if i not in imported_ids]
        had_imported = len(by_hand) < len(orphan.members)
        if not by_hand and (had_imported or name in evicted):
            out.removed.append(orphan)
            continue
        out.kept_orphans.append(orphan)
        if name in evicted:
            aside = unique_login(f"{name[:56].rstrip('.-_')}-old", taken)
            taken.add(aside)
            out.changes.append(GroupChange(orphan.id, name, aside, orphan.display_name,
                                           orphan.display_name))
    for name, group in sorted(out.target.items()):
        # The display name follows the file only with a new name (hand edits stay).
        if group is not None and group.name != name:
            out.changes.append(GroupChange(group.id, group.name, name, group.display_name,
                                           out.display[name].display_name))
    return out


def _class_successors(records: list[ImportRecord], state: DirectoryState,
                      imported_ids: dict[int, str]) -> dict[str, GroupState]:
    """class name in the file -> the existing class group that most of its pupils come from.

    A group succeeds to class C when a strict majority of its pupils who are still
    in the file are in C; of several such groups C takes the one bringing most pupils
    (the one already named C on a tie).
    """
    pupil_class = {r.external_id: r.class_name for r in records if r.role is Role.PUPIL}
    candidates: dict[str, list[tuple[int, bool, str, GroupState]]] = {}
    for group in state.groups.values():
        if group.kind is not GroupKind.CLASS:
            continue
        stayers = [imported_ids[i] for i, role in group.members.items()
                   if role is MemberRole.MEMBER and imported_ids.get(i) in pupil_class]
        counts = Counter(name for e in stayers if (name := pupil_class[e]))
        if not counts:
            continue
        best, count = min(counts.items(), key=lambda kv: (-kv[1], kv[0] != group.name, kv[0]))
        if 2 * count > len(stayers):
            candidates.setdefault(best, []).append(
                (-count, best != group.name, group.name, group))
    return {name: min(options)[3] for name, options in candidates.items()}


def _current_classes(state: DirectoryState, imported_ids: dict[int, str]) -> dict[str, str]:
    """external id -> the class group a pupil is in now (the first by name if several)."""
    out: dict[str, str] = {}
    for group in sorted(state.groups.values(), key=lambda g: g.name, reverse=True):
        if group.kind is GroupKind.CLASS:
            for account_id, role in group.members.items():
                if role is MemberRole.MEMBER and account_id in imported_ids:
                    out[imported_ids[account_id]] = group.name
    return out


def _membership_changes(records: list[ImportRecord], groups: _Groups,
                        imported_ids: dict[int, str]) -> Iterable[MembershipChange]:
    wanted: dict[str, dict[str, MemberRole]] = {name: {} for name in groups.target}
    for record in records:
        if record.role is Role.PUPIL:
            role = MemberRole.MEMBER
        elif record.role in OWNER_ROLES:
            role = MemberRole.OWNER
        else:
            continue
        for ref in (*record.classes, *record.courses):
            wanted[ref.name][record.external_id] = role
    for name, group in sorted(groups.target.items()):
        have = _imported_members(group, imported_ids) if group is not None else {}
        yield from _diff_members(name, have, wanted[name])
    for orphan in groups.kept_orphans:
        have = _imported_members(orphan, imported_ids)
        new_name = next((c.new_name for c in groups.changes if c.group_id == orphan.id),
                        orphan.name)
        yield from _diff_members(new_name, have, {})


def _imported_members(group: GroupState, imported_ids: dict[int, str]) -> dict[str, MemberRole]:
    return {imported_ids[i]: role for i, role in group.members.items() if i in imported_ids}


def _diff_members(group: str, have: dict[str, MemberRole],
                  want: dict[str, MemberRole]) -> Iterable[MembershipChange]:
    for external_id in sorted(have.keys() - want.keys()):
        yield MembershipChange(group, external_id, None)
    for external_id, role in sorted(want.items()):
        if have.get(external_id) is not role:
            yield MembershipChange(group, external_id, role)


# --- accounts -------------------------------------------------------------------------

def _new_login(record: ImportRecord, taken: Collection[str],
               local_domains: frozenset[str]) -> str:
    """The e-mail's local part when the school program gave one of ours and it is free,
    else ``first.last`` numbered on collision."""
    local, _, domain = record.email.rpartition("@")
    if domain in local_domains and is_valid_local_part(local) and local not in taken:
        return local
    return unique_login(login_base(record.first_name, record.last_name), taken)


def _field_changes(account: AccountState, record: ImportRecord) -> tuple[FieldChange, ...]:
    changes = []
    if account.first_name != record.first_name:
        changes.append(FieldChange("first_name", account.first_name, record.first_name))
    if account.last_name != record.last_name:
        changes.append(FieldChange("last_name", account.last_name, record.last_name))
    # A display name edited by hand stays until the name itself changes.
    if changes and account.display_name != record.display_name:
        changes.append(FieldChange("display_name", account.display_name,
                                   record.display_name))
    if account.role is not record.role:
        changes.append(FieldChange("role", account.role.value, record.role.value))
    return tuple(changes)


def _children_changes(records: list[ImportRecord], state: DirectoryState,
                      imported_ids: dict[int, str]) -> Iterable[ChildrenChange]:
    wanted = {r.external_id: r.parent_of for r in records if r.parent_of}
    current: dict[str, tuple[set[str], tuple[int, ...]]] = {}
    for parent_id, child_ids in state.children.items():
        ext = imported_ids[parent_id]
        current[ext] = ({imported_ids[c] for c in child_ids if c in imported_ids},
                        tuple(sorted(c for c in child_ids if c not in imported_ids)))
    for parent in sorted(wanted.keys() | current.keys()):
        want = wanted.get(parent, ())
        have, others = current.get(parent, (set(), ()))
        if set(want) != have:
            yield ChildrenChange(parent, tuple(want), others)
