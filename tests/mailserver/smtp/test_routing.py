"""Recipient routing decisions and the short directory cache, on the real directory."""

from __future__ import annotations

import asyncio

import pytest

from conf.app import School
from directory.model import GroupKind, MemberRole, Role, Status
from mailserver.smtp.addresses import Mailbox, parse_path
from mailserver.smtp.lookup_cache import TtlCache
from mailserver.smtp.routing import Refusal, Route, Router

DOMAINS = frozenset({"schule.test"})


def box(text: str) -> Mailbox:
    mailbox = parse_path(f"<{text}>")
    assert mailbox is not None
    return mailbox


async def test_routes_and_refusals(school: School) -> None:
    d = school.directory
    anna = await d.create_account(role=Role.TEACHER, login="anna")
    paul = await d.create_account(role=Role.PUPIL, login="paul")
    await d.create_group("klasse", kind=GroupKind.CLASS)
    await d.add_member("klasse", "paul")
    await d.add_member("klasse", "anna", MemberRole.OWNER)
    router = Router(d, DOMAINS)
    assert await router.route(None, box("Anna@schule.test")) == Route(account_ids=(anna.id,))
    assert await router.route(anna, box("x@outside.example")) == Route(
        remote="x@outside.example")
    group = await router.route(anna, box("klasse@schule.test"))
    assert sorted(group.account_ids) == sorted([anna.id, paul.id])
    for account, address, code in [
        (None, "x@outside.example", "554 5.7.1"),
        (None, "klasse@schule.test", "550 5.7.1"),
        (paul, "x@outside.example", "550 5.7.1"),
        (None, "nobody@schule.test", "550 5.1.1"),
        (anna, "anna@[127.0.0.1]", "550 5.7.1"),
    ]:
        with pytest.raises(Refusal) as caught:
            await router.route(account, box(address))
        assert caught.value.reply.startswith(code), (address, caught.value.reply)


async def test_sender_checks(school: School) -> None:
    d = school.directory
    anna = await d.create_account(role=Role.TEACHER, login="anna")
    await d.add_alias("frau.a", "anna")
    await d.create_group("klasse", kind=GroupKind.CLASS)
    await d.add_member("klasse", "anna", MemberRole.OWNER)
    await d.create_group("andere", kind=GroupKind.CLASS)
    router = Router(d, DOMAINS)
    for address, owned in [("anna@schule.test", True), ("Frau.A@schule.test", True),
                           ("klasse@schule.test", True), ("andere@schule.test", False),
                           ("anna@outside.example", False), ("anna%x@schule.test", False)]:
        assert await router.may_send_as(anna, box(address)) is owned, address
    await router.check_sender(None, None)  # bounces are accepted on the MX
    with pytest.raises(Refusal):
        await router.check_sender(None, box("anna@schule.test"))
    with pytest.raises(Refusal):
        await router.check_sender(anna, None)


async def test_resolve_cache_expires(school: School) -> None:
    d = school.directory
    await d.create_account(role=Role.PUPIL, login="paul")
    now = [0.0]
    cache = TtlCache(d.resolve, ttl=5.0, clock=lambda: now[0])
    first = await cache.get("paul")
    assert first is not None and first.account is not None
    await d.set_status("paul", Status.SUSPENDED)
    assert await cache.get("paul") == first  # within the ttl: the cached answer
    now[0] = 6.0
    later = await cache.get("paul")
    assert later is not None and later.account is not None
    assert later.account.status is Status.SUSPENDED
    assert await TtlCache(d.resolve, ttl=0).get("nobody") is None


async def test_resolve_cache_shares_concurrent_lookups(school: School) -> None:
    """Parallel connections missing the same key pay for one directory lookup."""
    d = school.directory
    await d.create_account(role=Role.PUPIL, login="paul")
    calls: list[str] = []

    class CountingDirectory:
        async def resolve(self, key: str) -> object:
            calls.append(key)
            await asyncio.sleep(0.01)  # a lookup in flight while the others arrive
            return await d.resolve(key)

    cache = TtlCache(CountingDirectory().resolve, ttl=5.0)
    results = await asyncio.gather(*(cache.get("paul") for _ in range(10)),
                                   cache.get("nobody"))
    assert calls == ["paul", "nobody"]
    assert all(r is not None and r.account is not None for r in results[:10])
    assert results[10] is None
    assert await cache.get("paul") is results[0] and calls == ["paul", "nobody"]


async def test_group_mail_reuses_members_and_verdicts_within_the_ttl(school: School) -> None:
    """A teacher's second mail to her class asks the directory nothing; with ttl 0, all."""
    d = school.directory
    anna = await d.create_account(role=Role.TEACHER, login="anna")
    await d.create_account(role=Role.PUPIL, login="paul")
    await d.create_group("klasse", kind=GroupKind.CLASS)
    await d.add_member("klasse", "paul")
    await d.add_member("klasse", "anna", MemberRole.OWNER)
    calls: list[str] = []

    class CountingDirectory:
        def __getattr__(self, name: str) -> object:
            real = getattr(d, name)
            if not callable(real):
                return real

            async def counted(*args: object) -> object:
                calls.append(name)
                return await real(*args)
            return counted

    for ttl, asked_again in [(5.0, []), (0.0, ["resolve", "may_contact", "group_members"])]:
        calls.clear()
        router = Router(CountingDirectory(), DOMAINS, cache_seconds=ttl)  # type: ignore[arg-type]
        first = await router.route(anna, box("klasse@schule.test"))
        assert sorted(calls) == ["group_members", "may_contact", "resolve"]
        calls.clear()
        assert await router.route(anna, box("Klasse@schule.test")) == first
        assert sorted(calls) == sorted(asked_again)
