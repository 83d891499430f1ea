"""Recipient routing decisions and the short directory cache, on the real directory."""

from __future__ import annotations

import asyncio

import pytest

from conf.app import School
from directory.directory_relay import DirectoryRelay
from directory.model import GroupKind, MemberRole, Role, Status
from directory.service import Directory
from mailserver.smtp.addresses import Mailbox, parse_path
from mailserver.smtp.lookup_cache import TtlCache
from mailserver.smtp.routing import Refusal, Route, Router
from tests.support.broadcast import PairedBroadcast

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


async def test_a_directory_change_empties_the_cache_at_once(school: School) -> None:
    """Issue 18: the pupil who left, the suspended account and the new alias are seen
    by the next RCPT; between changes a class mail asks the directory nothing.  The
    change is made through another process's directory (same database), told over the
    school's broadcast (directory.directory_relay), as between two serve workers."""
    d = school.directory
    anna = await d.create_account(role=Role.TEACHER, login="anna")
    paul = await d.create_account(role=Role.PUPIL, login="paul")
    lena = await d.create_account(role=Role.PUPIL, login="lena")
    await d.create_group("klasse", kind=GroupKind.CLASS)
    await d.add_member("klasse", "paul")
    await d.add_member("klasse", "lena")
    here_b, there_b = PairedBroadcast.pair()
    elsewhere = Directory(d.db, d.hasher, d.policy, domain="schule.test")
    DirectoryRelay(d.changes, here_b)
    DirectoryRelay(elsewhere.changes, there_b)
    router = Router(d, DOMAINS, cache_seconds=3600.0)
    d.changes.subscribe(router.forget)
    before = d.changes.count
    assert set((await router.route(anna, box("klasse@schule.test"))).account_ids) == {
        paul.id, lena.id}
    await elsewhere.remove_member("klasse", "paul")
    assert (await router.route(anna, box("klasse@schule.test"))).account_ids == (lena.id,)
    assert (await router.route(anna, box("lena@schule.test"))).account_ids == (lena.id,)
    await elsewhere.set_status("lena", Status.SUSPENDED)
    with pytest.raises(Refusal) as refused:
        await router.route(anna, box("lena@schule.test"))
    assert refused.value.reply.startswith("550 5.2.1")
    with pytest.raises(Refusal):
        await router.route(anna, box("paule@schule.test"))
    await d.add_alias("paule", "paul")  # this process's own change
    assert (await router.route(anna, box("paule@schule.test"))).account_ids == (paul.id,)
    assert there_b.sent == [("schulhof_directory", "changed")] * 2
    assert len(here_b.sent) == 1
    await here_b.reconnect()  # hints may have been lost: everything is forgotten
    assert d.changes.count == before + 4  # two relayed, one own, one catch-up


async def test_a_lookup_in_flight_during_a_clear_is_not_kept() -> None:
    """It may have read the directory before the change: its waiters get it, the cache not."""
    answers = iter(["old", "new"])
    release = asyncio.Event()

    async def load(key: str) -> str:
        answer = next(answers)
        await release.wait()
        return answer

    cache: TtlCache[str, str] = TtlCache(load, ttl=3600.0)
    waiting = asyncio.ensure_future(cache.get("5a"))
    await asyncio.sleep(0)
    cache.clear()
    release.set()
    assert await waiting == "old"
    assert await cache.get("5a") == "new"
    assert await cache.get("5a") == "new"  # and that one is kept
