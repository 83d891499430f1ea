"""The directory service against a real database (SQLite or PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pytest

from conf.app import School
from directory.auth import AuthenticationFailed, AuthenticationThrottled
from directory.model import (
    AlreadyExists,
    GroupKind,
    InvalidName,
    MemberRole,
    NotFound,
    Role,
    Status,
)


async def test_account_gets_login_from_name_and_resolves(school: School) -> None:
    d = school.directory
    a = await d.create_account(role=Role.PUPIL, first_name="Jürgen", last_name="Müßig")
    b = await d.create_account(role=Role.PUPIL, first_name="Jurgen", last_name="Mussig")
    assert a.login == "juergen.muessig"
    assert b.login == "jurgen.mussig"
    c = await d.create_account(role=Role.PUPIL, first_name="Jürgen", last_name="Müßig")
    assert c.login == "juergen.muessig2"
    resolved = await d.resolve("Juergen.Muessig")
    assert resolved is not None and resolved.account == a


async def test_local_parts_are_one_namespace(school: School) -> None:
    d = school.directory
    await d.create_account(role=Role.TEACHER, login="sekretariat")
    with pytest.raises(AlreadyExists):
        await d.create_group("sekretariat")
    await d.create_group("5a", kind=GroupKind.CLASS)
    with pytest.raises(AlreadyExists):
        await d.add_alias("5a", "sekretariat")
    with pytest.raises(InvalidName):
        await d.create_group("bad name")


async def test_aliases_resolve_to_their_owner(school: School) -> None:
    d = school.directory
    t = await d.create_account(role=Role.TEACHER, login="anna.schmidt")
    g = await d.create_group("5a", kind=GroupKind.CLASS)
    await d.add_alias("a.schmidt", "anna.schmidt")
    await d.add_alias("klasse5a", "5a")
    assert (await d.resolve("a.schmidt")).account == t
    assert (await d.resolve("klasse5a")).group == g
    assert await d.addresses_of("anna.schmidt") == {"anna.schmidt", "a.schmidt"}
    assert [(e.local_part, e.owner) for e in await d.list_aliases()] == [
        ("a.schmidt", "anna.schmidt"), ("klasse5a", "5a")]
    await d.delete_alias("a.schmidt")
    assert await d.resolve("a.schmidt") is None
    with pytest.raises(NotFound):
        await d.delete_alias("anna.schmidt")  # a primary address is not an alias


async def test_group_membership_and_policy(school: School) -> None:
    d = school.directory
    teacher = await d.create_account(role=Role.TEACHER, login="lehrer")
    pupil = await d.create_account(role=Role.PUPIL, login="kind")
    other = await d.create_account(role=Role.PUPIL, login="anderes.kind")
    parent = await d.create_account(role=Role.PARENT, login="mutter")
    await d.create_group("5a", kind=GroupKind.CLASS)
    await d.add_member("5a", "lehrer", MemberRole.OWNER)
    await d.add_member("5a", "kind")
    await d.link_parent("mutter", "kind")
    members = await d.group_members("5a")
    assert [(m.account.login, m.role) for m in members] == [
        ("kind", MemberRole.MEMBER), ("lehrer", MemberRole.OWNER)]
    assert (await d.may_contact(teacher, "5a@schule.test")).allowed
    verdict = await d.may_contact(pupil, "5a@schule.test")
    assert not verdict.allowed and "teachers" in verdict.reason
    assert (await d.may_contact(parent, "kind@schule.test")).allowed
    assert not (await d.may_contact(parent, "anderes.kind@schule.test")).allowed
    assert (await d.may_contact(other, "lehrer@schule.test")).allowed
    refused = await d.may_contact(pupil, "someone@example.org")
    assert not refused.allowed and "example.org" in refused.reason
    assert (await d.may_contact(teacher, "someone@example.org")).allowed
    assert not (await d.may_contact(teacher, "nobody@schule.test")).allowed
    await d.remove_member("5a", "kind")
    assert [m.account.login for m in await d.group_members("5a")] == ["lehrer"]
    with pytest.raises(NotFound):  # the DELETE matched no row
        await d.remove_member("5a", "kind")


async def test_authentication_and_throttling(school: School) -> None:
    d = school.directory
    await d.create_account(role=Role.PUPIL, login="lea", password="richtig-geheim")
    auth = school.authenticator
    account = await auth.authenticate("LEA@schule.test", "richtig-geheim", "10.0.0.1")
    assert account.login == "lea"
    for _ in range(4):  # the 4th failure from one address locks that address for lea
        with pytest.raises(AuthenticationFailed):
            await auth.authenticate("lea", "falsch", "10.0.0.2")
    with pytest.raises(AuthenticationThrottled):
        await auth.authenticate("lea", "richtig-geheim", "10.0.0.2")
    # ... but not lea herself at her known address or at another one.
    assert (await auth.authenticate("lea", "richtig-geheim", "10.0.0.1")).login == "lea"
    assert (await auth.authenticate("lea", "richtig-geheim", "10.0.0.3")).login == "lea"
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate("niemand", "x", "10.0.0.9")
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate("lea@other.example", "richtig-geheim", "10.0.0.9")


async def test_suspended_account_cannot_log_in(school: School) -> None:
    d = school.directory
    await d.create_account(role=Role.TEACHER, login="tom", password="pw-pw-pw")
    await d.set_status("tom", Status.SUSPENDED)
    with pytest.raises(AuthenticationFailed):
        await school.authenticator.authenticate("tom", "pw-pw-pw", "10.1.1.1")


async def test_purge_deletes_only_leavers_past_their_date(school: School) -> None:
    d = school.directory
    await d.create_account(role=Role.PUPIL, login="geht")
    await d.create_account(role=Role.PUPIL, login="bleibt")
    await d.create_account(role=Role.PUPIL, login="spaeter")
    await d.create_group("5a")
    await d.add_member("5a", "geht")
    await d.add_alias("g.alias", "geht")
    await d.set_status("geht", Status.LEAVER, dt.date(2026, 1, 1))
    await d.set_status("spaeter", Status.LEAVER, dt.date(2026, 12, 1))
    assert await d.purge_leavers(dt.date(2026, 6, 1)) == ["geht"]
    assert await d.resolve("geht") is None and await d.resolve("g.alias") is None
    assert [m.account.login for m in await d.group_members("5a")] == []
    assert {a.login for a in await d.list_accounts()} == {"bleibt", "spaeter"}


async def test_generated_password_is_rehashed_with_full_parameters_at_first_login(
        school: School) -> None:
    d, hasher = school.directory, school.hasher
    await d.create_account(role=Role.PUPIL, login="neu")
    light = hasher.hash_generated_sync("Zufall-Geheim-42")
    assert await d.replace_password_hash("neu", "", light)
    assert hasher.needs_rehash(light)
    await school.authenticator.authenticate("neu", "Zufall-Geheim-42", "10.2.0.1")
    _, stored = await d.credentials_for("neu")
    assert stored != light and not hasher.needs_rehash(stored)
    assert hasher.verify_sync(stored, "Zufall-Geheim-42")
    # A hash that changed meanwhile (e.g. `schulhof user passwd`) is not overwritten.
    assert not await d.replace_password_hash("neu", light, "x")


async def test_the_messenger_system_user_name_is_reserved(school: School) -> None:
    d = school.directory
    with pytest.raises(InvalidName):
        await d.create_account(role=Role.ADMIN, login="schulhof")
    with pytest.raises(InvalidName):
        await d.create_group("schulhof")
    generated = await d.create_account(role=Role.PUPIL, last_name="Schulhof")
    assert generated.login == "schulhof2"


async def test_account_by_id_in_one_statement_equals_the_orm_read(school: School) -> None:
    """``get_account_by_id`` reads with the driver alone (every webmail page asks
    it); the values, dates and zones included, are those of the ORM read."""
    from directory import repository as repo

    d = school.directory
    account = await d.create_account(role=Role.PUPIL, first_name="Jörg", last_name="Öz")
    await d.set_status(account.login, Status.LEAVER, dt.date(2027, 7, 31))
    async with school.db.read() as session:
        expected = repo.account_from_row(await repo.account_row(session, account_id=account.id))
    found = await d.get_account_by_id(account.id)
    assert found == expected
    assert found.created_at.tzinfo is not None and found.updated_at.tzinfo is not None
    with pytest.raises(NotFound):
        await d.get_account_by_id(account.id + 1000)
