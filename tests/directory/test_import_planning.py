"""The import planner: records + directory state -> plan (pure, no database)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from directory.addresses import is_valid_local_part
from directory.importer import InvalidImportFile
from directory.importer.planning import (
    ChildrenChange,
    ClassMove,
    FieldChange,
    GroupChange,
    GroupRemoval,
    Leaver,
    MembershipChange,
    NewGroup,
    PlanOptions,
    Restore,
    plan_import,
)
from directory.importer.records import GroupRef, ImportRecord, group_name
from directory.importer.state import AccountState, DirectoryState, GroupState
from directory.model import GroupKind, MemberRole, Role, Status
from tests.support.properties import examples

TODAY = dt.date(2026, 8, 1)
OPTIONS = PlanOptions(today=TODAY, leaver_grace_days=90, local_domains=frozenset({"schule.test"}))
M, OWNER = MemberRole.MEMBER, MemberRole.OWNER


def rec(ext: str, first: str = "Anna", last: str = "Schmidt", role: Role = Role.PUPIL,
        classes: tuple[str, ...] = (), courses: tuple[str, ...] = (), email: str = "",
        parent_of: tuple[str, ...] = (), line: int = 0) -> ImportRecord:
    return ImportRecord(
        line=line or 2 + int("".join(c for c in ext if c.isdigit()) or 0), external_id=ext,
        first_name=first, last_name=last, role=role,
        classes=tuple(GroupRef(group_name(c), c) for c in classes),
        courses=tuple(GroupRef(group_name(c), c) for c in courses), email=email,
        parent_of=parent_of)


def account(ext: str, account_id: int, login: str = "", role: Role = Role.PUPIL,
            status: Status = Status.ACTIVE, first: str = "Anna",
            last: str = "Schmidt") -> AccountState:
    return AccountState(id=account_id, external_id=ext, login=login or f"user.{ext}",
                        first_name=first, last_name=last, display_name=f"{first} {last}",
                        role=role, status=status)


def state(accounts: list[AccountState] = (), groups: list[GroupState] = (),
          other_addresses: dict[str, str] | None = None,
          children: dict[int, frozenset[int]] | None = None) -> DirectoryState:
    addresses = {a.login: "account" for a in accounts}
    addresses.update({g.name: "group" for g in groups})
    addresses.update(other_addresses or {})
    return DirectoryState(accounts={a.external_id: a for a in accounts},
                          groups={g.name: g for g in groups}, addresses=addresses,
                          children=children or {})


def group(group_id: int, name: str, members: dict[int, MemberRole],
          kind: GroupKind = GroupKind.CLASS) -> GroupState:
    return GroupState(id=group_id, name=name, display_name=name, kind=kind, members=members)


def test_first_import_creates_accounts_groups_memberships_and_links() -> None:
    records = [
        rec("1", "Jürgen", "Müßig", classes=("5a",), courses=("Ma LK1",)),
        rec("2", "Jürgen", "Müßig", classes=("5a",)),
        rec("3", "Eva", "Lehr", Role.TEACHER, classes=("5a",), courses=("Ma LK1",)),
        rec("4", "Ute", "Müßig", Role.PARENT, parent_of=("1", "2")),
    ]
    plan = plan_import(records, state(other_addresses={"juergen.muessig": "alias"}), OPTIONS)
    assert [n.login for n in plan.created] == [
        "juergen.muessig2", "juergen.muessig3", "eva.lehr", "ute.muessig"]
    assert plan.groups_created == (NewGroup("5a", "5a", GroupKind.CLASS),
                                   NewGroup("ma-lk1", "Ma LK1", GroupKind.COURSE))
    assert set(plan.memberships) == {
        MembershipChange("5a", "1", M), MembershipChange("5a", "2", M),
        MembershipChange("5a", "3", OWNER), MembershipChange("ma-lk1", "1", M),
        MembershipChange("ma-lk1", "3", OWNER)}
    assert plan.children == (ChildrenChange("4", ("1", "2")),)
    assert not plan.leavers and not plan.moved and plan.unchanged == 0


def test_same_file_again_plans_nothing() -> None:
    records = [rec("1", classes=("5a",), courses=("Chor",)),
               rec("2", "Eva", "Lehr", Role.TEACHER, classes=("5a",)),
               rec("3", "Ute", "Schmidt", Role.PARENT, parent_of=("1",))]
    current = state([account("1", 1), account("2", 2, role=Role.TEACHER, first="Eva",
                                               last="Lehr"),
                     account("3", 3, role=Role.PARENT, first="Ute")],
                    [group(10, "5a", {1: M, 2: OWNER}),
                     group(11, "chor", {1: M}, GroupKind.COURSE)],
                    children={3: frozenset({1})})
    plan = plan_import(records, current, OPTIONS)
    assert plan.is_empty and plan.unchanged == 3


def test_login_never_changes_but_names_and_role_follow_the_file() -> None:
    current = state([account("1", 1, login="anna.schmidt")])
    plan = plan_import([rec("1", "Anna", "Meier", Role.STAFF)], current, OPTIONS)
    [update] = plan.updated
    assert update.login == "anna.schmidt"
    assert update.changes == (FieldChange("last_name", "Schmidt", "Meier"),
                              FieldChange("display_name", "Anna Schmidt", "Anna Meier"),
                              FieldChange("role", "pupil", "staff"))
    assert not plan.created


def test_display_name_edited_by_hand_is_kept_while_the_name_is_the_same() -> None:
    edited = AccountState(id=1, external_id="1", login="anna.schmidt", first_name="Anna",
                          last_name="Schmidt", display_name="Dr. Anna Schmidt",
                          role=Role.TEACHER, status=Status.ACTIVE)
    plan = plan_import([rec("1", role=Role.TEACHER)], state([edited]), OPTIONS)
    assert plan.is_empty


def test_missing_accounts_become_leavers_once_and_come_back() -> None:
    current = state([account("1", 1), account("2", 2),
                     account("3", 3, status=Status.LEAVER), account("4", 4,
                                                                    status=Status.LEAVER)])
    plan = plan_import([rec("1"), rec("4")], current, OPTIONS)
    assert plan.leavers == (Leaver("2", "user.2", dt.date(2026, 10, 30)),)  # 3 keeps its date
    assert plan.restored == (Restore("4", "user.4"),)


def test_suspended_account_in_the_file_stays_suspended() -> None:
    current = state([account("1", 1, status=Status.SUSPENDED)])
    assert plan_import([rec("1")], current, OPTIONS).is_empty


def test_rollover_renames_class_groups_along_with_their_pupils() -> None:
    current = state(
        [account(str(i), i) for i in range(1, 8)]
        + [account("t1", 50, role=Role.TEACHER), account("t2", 51, role=Role.TEACHER)],
        [group(10, "5a", {1: M, 2: M, 3: M, 50: OWNER}),
         group(11, "6a", {4: M, 5: M, 51: OWNER}),
         group(12, "7a", {6: M, 7: M})])
    records = [rec("1", classes=("6a",)), rec("2", classes=("6a",)), rec("3", classes=("6a",)),
               rec("4", classes=("7a",)), rec("5", classes=("7a",)),
               rec("8", classes=("5a",)),  # a new pupil
               rec("t1", role=Role.TEACHER, classes=("6a",)),
               rec("t2", role=Role.TEACHER, classes=("5a",))]
    plan = plan_import(records, current, OPTIONS)
    assert set(plan.groups_changed) == {GroupChange(10, "5a", "6a", "5a", "6a"),
                                        GroupChange(11, "6a", "7a", "6a", "7a")}
    assert plan.groups_created == (NewGroup("5a", "5a", GroupKind.CLASS),)
    assert plan.groups_removed == (GroupRemoval(12, "7a"),)  # its pupils left
    assert {m.external_id: (m.old_class, m.new_class) for m in plan.moved} == {
        "1": ("5a", "6a"), "2": ("5a", "6a"), "3": ("5a", "6a"), "4": ("6a", "7a"),
        "5": ("6a", "7a")}
    assert all(isinstance(m, ClassMove) for m in plan.moved)
    # Pupils keep their (renamed) group; t2 moves from the old 6a to the new 5a.
    assert set(plan.memberships) == {
        MembershipChange("5a", "8", M), MembershipChange("5a", "t2", OWNER),
        MembershipChange("7a", "t2", None)}
    assert {v.external_id for v in plan.leavers} == {"6", "7"}


def test_split_class_without_majority_gets_new_groups() -> None:
    current = state([account(str(i), i) for i in range(1, 5)],
                    [group(10, "5a", {1: M, 2: M, 3: M, 4: M})])
    records = [rec("1", classes=("6a",)), rec("2", classes=("6a",)),
               rec("3", classes=("6b",)), rec("4", classes=("6b",))]
    plan = plan_import(records, current, OPTIONS)
    assert not plan.groups_changed
    assert [g.name for g in plan.groups_created] == ["6a", "6b"]
    assert plan.groups_removed == (GroupRemoval(10, "5a"),)


def test_one_pupil_changing_class_does_not_move_the_group() -> None:
    current = state([account(str(i), i) for i in range(1, 5)],
                    [group(10, "5a", {1: M, 2: M, 3: M}), group(11, "5b", {4: M})])
    records = [rec("1", classes=("5a",)), rec("2", classes=("5a",)),
               rec("3", classes=("5a",)), rec("4", classes=("5a",))]
    plan = plan_import(records, current, OPTIONS)
    assert not plan.groups_changed and not plan.groups_created
    assert plan.groups_removed == (GroupRemoval(11, "5b"),)
    assert plan.moved == (ClassMove("4", "user.4", "5b", "5a"),)
    assert plan.memberships == (MembershipChange("5a", "4", M),)


def test_orphan_group_with_hand_added_members_is_kept_or_moved_aside() -> None:
    hand = 99  # an account made by hand (no external id): never touched
    current = state([account("1", 1), account("2", 2), account("9", 9)],
                    [group(10, "5a", {1: M, 2: M}), group(11, "6a", {9: M, hand: M}),
                     group(12, "ag", {9: M, hand: OWNER}, GroupKind.COURSE)],
                    other_addresses={"hausmeister": "account", "6a-old": "alias"})
    plan = plan_import([rec("1", classes=("6a",)), rec("2", classes=("6a",))], current,
                       OPTIONS)
    assert set(plan.groups_changed) == {GroupChange(11, "6a", "6a-old2", "6a", "6a"),
                                        GroupChange(10, "5a", "6a", "5a", "6a")}
    assert not plan.groups_removed
    assert set(plan.memberships) == {MembershipChange("6a-old2", "9", None),
                                     MembershipChange("ag", "9", None)}


def test_group_address_used_by_an_account_is_a_bad_row() -> None:
    current = state(other_addresses={"sekretariat": "account", "chor": "alias"})
    records = [rec("1", classes=("Sekretariat",), line=2), rec("2", courses=("Chor",), line=3)]
    with pytest.raises(InvalidImportFile) as info:
        plan_import(records, current, OPTIONS)
    assert [(e.line, e.reason) for e in info.value.errors] == [
        (2, "class 'Sekretariat': its group address 'sekretariat' is already used by an "
            "account"),
        (3, "course 'Chor': its group address 'chor' is already used by an alias")]


def test_email_at_the_school_domain_is_the_wished_login() -> None:
    current = state(other_addresses={"taken": "account"})
    plan = plan_import([rec("1", email="a.schmidt@schule.test"),
                        rec("2", email="taken@schule.test"),
                        rec("3", email="anna@gmail.example")], current, OPTIONS)
    assert [n.login for n in plan.created] == ["a.schmidt", "anna.schmidt", "anna.schmidt2"]


def test_parent_links_follow_the_file_and_keep_hand_made_links() -> None:
    current = state([account("p", 1, role=Role.PARENT), account("c1", 2), account("c2", 3),
                     account("q", 4, role=Role.PARENT)],
                    children={1: frozenset({2, 77}), 4: frozenset({3})})
    plan = plan_import([rec("p", role=Role.PARENT, parent_of=("c2",)), rec("c1"), rec("c2")],
                       current, OPTIONS)
    assert set(plan.children) == {ChildrenChange("p", ("c2",), (77,)),
                                  ChildrenChange("q", (), ())}


NAMES = st.text(min_size=1, max_size=100).filter(lambda s: s.strip())


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.tuples(NAMES, NAMES), min_size=1, max_size=40),
       st.sets(st.sampled_from(["user", "anna.schmidt", "a", "5a", "x.y", "user2"])))
def test_generated_names_give_valid_unique_ascii_logins(names: list[tuple[str, str]],
                                                         taken: set[str]) -> None:
    records = [rec(str(i), first.strip(), last.strip(), classes=("5a",) if i % 2 else ())
               for i, (first, last) in enumerate(names)]
    current = state(other_addresses=dict.fromkeys(taken - {"5a"}, "account"),
                    groups=[group(1, "5a", {})] if "5a" in taken else [])
    plan = plan_import(records, current, OPTIONS)
    logins = [n.login for n in plan.created]
    assert len(logins) == len(records)
    assert len(set(logins)) == len(logins)
    for login in logins:
        assert login.isascii() and is_valid_local_part(login) and len(login) <= 64
        assert login not in taken and login != "5a"
