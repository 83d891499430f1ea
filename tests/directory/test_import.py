"""The bulk import against a real database (SQLite, or PostgreSQL with --database-url)."""

from __future__ import annotations

import csv
import datetime as dt
import stat
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from conf.app import School
from directory.addresses import is_valid_local_part
from directory.auth import AuthenticationFailed
from directory.importer import Importer, ImportFileError, ImportSummary, InvalidImportFile
from directory.importer.records import group_name
from directory.model import GroupKind, MemberRole, Role, Status
from directory.schema import AccountRow, GroupMemberRow, GroupRow, ParentLinkRow
from tests.support.csv_factory import Roster, make_school, rollover, to_csv

TODAY = dt.date(2026, 8, 1)
GRACE_END = dt.date(2026, 10, 30)  # TODAY + 90 days
ROLES = {"pupil": Role.PUPIL, "teacher": Role.TEACHER, "parent": Role.PARENT}


@dataclass(frozen=True)
class Snapshot:
    accounts: dict[str, tuple]  # external id (or login for hand-made) -> row values
    groups: dict[str, tuple[int, str, object]]  # name -> (id, kind, updated_at)
    members: dict[tuple[str, str], MemberRole]  # (group, external id or login) -> role
    links: set[tuple[str, str]]  # (parent, child) external ids

    def login(self, external_id: str) -> str:
        return self.accounts[external_id][0]


async def snapshot(school: School) -> Snapshot:
    async with school.db.read() as s:
        rows = (await s.scalars(select(AccountRow))).all()
        key = {r.id: r.external_id or r.login for r in rows}
        accounts = {key[r.id]: (r.login, r.role, r.status, r.deletion_date, r.first_name,
                                r.last_name, r.display_name, r.updated_at) for r in rows}
        groups = {g.name: (g.id, g.kind, g.updated_at)
                  for g in (await s.scalars(select(GroupRow))).all()}
        members = {(name, key[account_id]): MemberRole(role)
                   for name, account_id, role in (await s.execute(
                       select(GroupRow.name, GroupMemberRow.account_id, GroupMemberRow.role)
                       .join(GroupRow, GroupRow.id == GroupMemberRow.group_id))).all()}
        links = {(key[p], key[c]) for p, c in (await s.execute(
            select(ParentLinkRow.parent_id, ParentLinkRow.child_id))).all()}
    return Snapshot(accounts, groups, members, links)


def expected_members(roster: Roster) -> dict[tuple[str, str], MemberRole]:
    out = {}
    for p in roster.people:
        role = {"pupil": MemberRole.MEMBER, "teacher": MemberRole.OWNER}.get(p.role)
        if role is None:
            continue
        for name in ([p.klass] if p.klass else []) + list(p.courses):
            out[(group_name(name), p.external_id)] = role
    return out


def expected_links(roster: Roster) -> set[tuple[str, str]]:
    return {(p.external_id, c) for p in roster.parents for c in p.parent_of}


async def run(school: School, data: bytes, **kwargs: object) -> ImportSummary:
    kwargs.setdefault("today", TODAY)
    return await Importer(school.directory).run(data, **kwargs)


def counts(summary: ImportSummary) -> dict[str, int]:
    p = summary.plan
    return {"created": len(p.created), "updated": len(p.updated), "moved": len(p.moved),
            "leavers": len(p.leavers), "restored": len(p.restored)}


async def test_large_school_import_reimport_and_rollover(school: School) -> None:
    roster = make_school(2000)  # + 133 teachers and 666 parents
    data = to_csv(roster, encoding="cp1252", delimiter=";")
    assert "Müßig".encode("cp1252") in data

    first = await run(school, data)
    assert (first.encoding, first.delimiter, first.rows) == ("cp1252", ";", len(roster.people))
    assert counts(first) == {"created": 2799, "updated": 0, "moved": 0, "leavers": 0,
                             "restored": 0}
    snap = await snapshot(school)
    assert snap.login("S00001") == "juergen.muessig"
    assert snap.accounts["S00001"][4:7] == ("Jürgen", "Müßig", "Jürgen Müßig")
    logins = [a[0] for a in snap.accounts.values()]
    assert len(set(logins)) == len(logins) == 2799
    assert all(is_valid_local_part(login) and login.isascii() for login in logins)
    assert Counter(a[1] for a in snap.accounts.values()) == {"pupil": 2000, "teacher": 133,
                                                             "parent": 666}
    assert {ext: Role(a[1]) for ext, a in snap.accounts.items()} == {
        p.external_id: ROLES[p.role] for p in roster.people}
    classes = {n for n, (_, kind, _) in snap.groups.items() if kind == GroupKind.CLASS}
    assert classes == {f"{g}{letter}" for g in range(5, 11) for letter in "abcdefghijkl"}
    assert "franzoesisch-7" in snap.groups and snap.groups["franzoesisch-7"][1] == "course"
    assert snap.members == expected_members(roster)
    assert snap.links == expected_links(roster)

    again = await run(school, data)
    assert counts(again) == dict.fromkeys(counts(again), 0)
    assert again.plan.is_empty and again.plan.unchanged == 2799
    assert await snapshot(school) == snap  # not even an updated_at changed

    next_year = rollover(roster)
    summary = await run(school, to_csv(next_year))
    after = await snapshot(school)
    old_class = {p.external_id: p.klass for p in roster.pupils}
    stayed = [p for p in next_year.pupils if p.external_id in old_class]
    assert {m.external_id for m in summary.plan.moved} == {
        p.external_id for p in stayed if p.klass != old_class[p.external_id]}
    graduates = {p.external_id for p in roster.pupils} - {p.external_id for p in stayed}
    leaving_parents = {p.external_id for p in roster.parents} - {
        p.external_id for p in next_year.parents}
    assert {v.external_id for v in summary.plan.leavers} == graduates | leaving_parents
    assert {after.accounts[e][2:4] for e in graduates} == {("leaver", GRACE_END)}
    assert {n.external_id for n in summary.plan.created} == {
        p.external_id for p in next_year.people} - set(snap.accounts)
    assert not summary.plan.updated and not summary.plan.restored
    # Class groups went up with their pupils (same id, so the same list and room);
    # grade 5 is new, the old grade 10 groups are gone.
    for letter in "abcdefghijkl":
        for grade in range(5, 10):
            assert after.groups[f"{grade + 1}{letter}"][0] == snap.groups[f"{grade}{letter}"][0]
        assert after.groups[f"5{letter}"][0] not in {g[0] for g in snap.groups.values()}
    members_now = {k: v for k, v in after.members.items()}
    assert members_now == expected_members(next_year)
    assert after.links == expected_links(next_year)
    for ext in snap.accounts:
        assert after.login(ext) == snap.login(ext)  # logins never change


async def test_leaver_grace_purge_and_restore(school: School) -> None:
    roster = make_school(30, 3, 6)
    pupil = next(p for p in roster.pupils
                 if not any(p.external_id in q.parent_of for q in roster.parents))
    await run(school, to_csv(roster))
    login = (await snapshot(school)).login(pupil.external_id)

    summary = await run(school, to_csv(roster.without(pupil.external_id)))
    assert counts(summary) == {"created": 0, "updated": 0, "moved": 0, "leavers": 1,
                               "restored": 0}
    account = await school.directory.get_account(login)
    assert (account.status, account.deletion_date) == (Status.LEAVER, GRACE_END)
    assert await school.directory.groups_of(login) == []
    # Importing again later keeps the date: re-imports must not postpone deletion.
    await run(school, to_csv(roster.without(pupil.external_id)), today=dt.date(2026, 9, 1))
    assert (await school.directory.get_account(login)).deletion_date == GRACE_END

    # Back before the date: restored with the same login, classes and courses.
    back = await run(school, to_csv(roster), today=dt.date(2026, 9, 15))
    assert [r.login for r in back.plan.restored] == [login]
    assert counts(back)["created"] == 0
    account = await school.directory.get_account(login)
    assert (account.status, account.deletion_date) == (Status.ACTIVE, None)
    assert {g.name for g, _ in await school.directory.groups_of(login)} == {
        group_name(n) for n in (pupil.klass, *pupil.courses)}

    # Leaves again; purge deletes only from the deletion date on.
    await run(school, to_csv(roster.without(pupil.external_id)))
    assert await school.directory.purge_leavers(GRACE_END - dt.timedelta(days=1)) == []
    assert await school.directory.purge_leavers(GRACE_END) == [login]
    assert await school.directory.resolve(login) is None
    # Reappearing after the purge is a new account.
    summary = await run(school, to_csv(roster))
    assert [n.external_id for n in summary.plan.created] == [pupil.external_id]


async def test_accounts_made_by_hand_are_never_touched(school: School) -> None:
    d = school.directory
    hand = await d.create_account(role=Role.TEACHER, first_name="Hilde", last_name="Hand")
    roster = make_school(30, 2, 4)
    await run(school, to_csv(roster))
    await d.add_member("5a", hand.login, MemberRole.OWNER)
    before = await snapshot(school)
    summary = await run(school, to_csv(rollover(roster)))
    assert hand.login not in {v.login for v in summary.plan.leavers}
    after = await snapshot(school)
    assert after.accounts[hand.login] == before.accounts[hand.login]
    # 5a became 6a; the hand-made owner is still in the group (by id).
    assert after.members[("6a", hand.login)] is MemberRole.OWNER
    assert after.groups["6a"][0] == before.groups["5a"][0]


async def test_bad_file_changes_nothing_and_names_every_bad_line(school: School) -> None:
    roster = make_school(20, 2, 4)
    await run(school, to_csv(roster))
    before = await snapshot(school)
    good = to_csv(rollover(roster)).decode("cp1252").splitlines()
    bad = [*good[:3], "X1;;Leer;Schüler;5a;;;", *good[3:6], "X2;Tim;Tor;Hausmeister;;;;",
           "X3;Tom;Tor;Eltern;;;;S99999", "X4;Ina;Tor;Schüler;5a;;;X3", good[7], *good[7:]]
    with pytest.raises(InvalidImportFile) as info:
        await run(school, "\r\n".join(bad).encode("cp1252"))
    assert [e.line for e in info.value.errors] == [4, 8, 9, 10, 12]
    reasons = [e.reason for e in info.value.errors]
    assert reasons[0] == "empty first_name"
    assert reasons[1].startswith("unknown role 'Hausmeister'")
    assert reasons[2] == "parent_of 'S99999': no row has this external_id"
    assert reasons[3] == "parent_of is given, but the role is pupil, not parent"
    assert reasons[4].startswith("duplicate external_id")
    assert await snapshot(school) == before


async def test_group_address_taken_by_an_account_refuses_the_file(school: School) -> None:
    await school.directory.create_account(role=Role.STAFF, login="5a")
    with pytest.raises(InvalidImportFile) as info:
        await run(school, to_csv(make_school(10, 1, 0)))
    assert any("'5a' is already used by an account" in e.reason for e in info.value.errors)
    assert [a.login for a in await school.directory.list_accounts()] == ["5a"]


async def test_dry_run_changes_nothing(school: School) -> None:
    roster = make_school(30, 3, 6)
    dry = await run(school, to_csv(roster), dry_run=True)
    assert dry.dry_run and len(dry.plan.created) == 39
    assert await school.directory.list_accounts() == []
    await run(school, to_csv(roster))
    before = await snapshot(school)
    dry = await run(school, to_csv(rollover(roster)), dry_run=True)
    assert dry.plan.moved and dry.plan.leavers and dry.plan.created
    assert await snapshot(school) == before


async def test_utf8_bom_and_commas(school: School) -> None:
    roster = make_school(12, 1, 2)
    summary = await run(school, to_csv(roster, encoding="utf-8", bom=True, delimiter=",",
                                       line_end="\n"))
    assert (summary.encoding, summary.delimiter) == ("utf-8-sig", ",")
    account = await school.directory.get_account("juergen.muessig")
    assert (account.first_name, account.last_name, account.external_id) == (
        "Jürgen", "Müßig", "S00001")


async def test_passwords_file_is_private_and_its_passwords_log_in(school: School,
                                                                   tmp_path: Path) -> None:
    roster = make_school(8, 1, 2)
    out = tmp_path / "passwords.csv"
    summary = await run(school, to_csv(roster), passwords_out=out)
    assert summary.passwords_file == out
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    assert list(rows[0]) == ["login", "email", "first_name", "last_name", "role", "class",
                             "initial_password"]
    assert rows[0]["login"] == "juergen.muessig"
    assert rows[0]["email"] == "juergen.muessig@schule.test"
    assert (rows[0]["first_name"], rows[0]["class"]) == ("Jürgen", "5a")
    assert len(rows) == len(roster.people)
    assert all(len(r["initial_password"]) == 12 for r in rows)
    for row in rows:
        _account, password_hash = await school.directory.credentials_for(row["login"])
        assert school.hasher.verify_sync(password_hash, row["initial_password"])
    account = await school.authenticator.authenticate(rows[0]["login"],
                                                      rows[0]["initial_password"])
    assert account.external_id == "S00001"

    # No new accounts: no second file; an existing file is never overwritten.
    again = await run(school, to_csv(roster), passwords_out=tmp_path / "none.csv")
    assert again.passwords_file is None and not (tmp_path / "none.csv").exists()
    with pytest.raises(ImportFileError, match="exists"):
        await run(school, to_csv(rollover(roster)), passwords_out=out)
    assert len(await school.directory.list_accounts()) == len(roster.people)


async def test_without_passwords_file_new_accounts_cannot_log_in(school: School) -> None:
    summary = await run(school, to_csv(make_school(3, 1, 0)))
    assert summary.without_password == 4
    _account, password_hash = await school.directory.credentials_for("juergen.muessig")
    assert password_hash == ""
    with pytest.raises(AuthenticationFailed):
        await school.authenticator.authenticate("juergen.muessig", "")


async def test_failed_apply_removes_the_passwords_file(school: School, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import directory.importer.service as service

    real_apply = service.apply_plan

    async def apply_then_fail(*args: object) -> None:
        await real_apply(*args)
        raise RuntimeError("disk full")

    monkeypatch.setattr(service, "apply_plan", apply_then_fail)
    out = tmp_path / "passwords.csv"
    with pytest.raises(RuntimeError):
        await run(school, to_csv(make_school(3, 1, 0)), passwords_out=out)
    assert not out.exists()
    assert await school.directory.list_accounts() == []


async def test_short_generated_passwords_get_the_full_hash(school: School,
                                                          tmp_path: Path) -> None:
    for length, light in ((12, True), (8, False)):
        out = tmp_path / f"passwords-{length}.csv"
        importer = Importer(school.directory, password_length=length)
        await importer.run(to_csv(make_school(1, 0, 0, seed=length)).replace(
            b"S00001", f"S{length}".encode()), passwords_out=out, today=TODAY)
        [row] = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
        assert len(row["initial_password"]) == length
        _account, password_hash = await school.directory.credentials_for(row["login"])
        assert school.hasher.needs_rehash(password_hash) is light
        assert school.hasher.verify_sync(password_hash, row["initial_password"])
