"""Who may send as what, and where a recipient's mail goes (the SMTP session's decisions).

No protocol syntax here beyond the reply texts: the session calls these with
parsed mailboxes and the authenticated account (or None on the MX), and gets
a ``Route`` or a ``Refusal`` carrying the reply to send.

Decisions (RFC 5321 3.6 and 7.1; RFC 6409 for submission):

* A recipient at one of our domains must exist (``Directory.resolve``):
  unknown -> 550 5.1.1, suspended or leaver accounts -> 550 5.2.1.
* Any other domain is relaying: refused (554 5.7.1) without authentication,
  on every listener; authenticated users reach it if the role policy says
  so (``Directory.may_contact``), and it goes to the outbound queue.
* Address literals are never one of our domains (refused everywhere).
* Groups expand to their active members.  Outside senders (the MX, no
  account) may not post to groups at all: a school's class lists are not a
  public mailing list, and a spoofed teacher address would otherwise reach a
  whole class.  The safe default; a staff-maintained allow list can come later.
* A submitting account may send as its login and aliases, and as a group it
  owns (``MemberRole.OWNER``).

Address lookups (``Directory.resolve``) are cached for a few seconds per
service (``ResolveCache``): on a busy MX most mail goes to the same people,
and each lookup is a read transaction; concurrent misses share one lookup.
The price: an account that is suspended, or an alias that is removed, can
still receive mail for up to ``ttl`` seconds.  Role policy and group membership are never cached.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from directory.model import Account, MemberRole, Status
from directory.service import Directory, Resolved
from mailserver.smtp import replies
from mailserver.smtp.addresses import Mailbox, local_key


class Refusal(Exception):
    """A decision against a sender or recipient; ``reply`` is what the client hears."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


@dataclass(frozen=True)
class Route:
    """Where one accepted RCPT goes: local accounts (a group: several) or one remote address."""

    account_ids: tuple[int, ...] = ()
    remote: str | None = None


class ResolveCache:
    """``Directory.resolve`` results (hits and misses) for ``ttl`` seconds, bounded in size.

    Concurrent misses for one key share one lookup (single flight): parallel
    connections tend to deliver to the same people at the same moment, and
    without this each of them paid its own database round trip when an entry
    expired.
    """

    def __init__(self, directory: Directory, ttl: float, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._directory = directory
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, Resolved | None]] = {}
        self._inflight: dict[str, asyncio.Future[Resolved | None]] = {}

    async def resolve(self, key: str) -> Resolved | None:
        if self._ttl <= 0:
            return await self._directory.resolve(key)
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        lookup = self._inflight.get(key)
        if lookup is None:
            lookup = asyncio.ensure_future(self._directory.resolve(key))
            self._inflight[key] = lookup
            lookup.add_done_callback(lambda done: self._settle(key, done))
        # shield: one waiter going away must not cancel the lookup the others share.
        return await asyncio.shield(lookup)

    def _settle(self, key: str, lookup: asyncio.Future[Resolved | None]) -> None:
        self._inflight.pop(key, None)
        if lookup.cancelled() or lookup.exception() is not None:
            return  # not cached; the waiters saw the error
        now = self._clock()
        if len(self._entries) >= self._max_entries:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
        self._entries[key] = (now + self._ttl, lookup.result())


class Router:
    def __init__(self, directory: Directory, local_domains: frozenset[str], *,
                 cache_seconds: float = 0.0) -> None:
        self._directory = directory
        self._local_domains = local_domains
        self._resolve = ResolveCache(directory, cache_seconds).resolve

    def is_local(self, mailbox: Mailbox) -> bool:
        return not mailbox.is_address_literal and mailbox.domain in self._local_domains

    # --- senders -------------------------------------------------------------------------
    async def check_sender(self, account: Account | None, mailbox: Mailbox | None) -> None:
        """MAIL FROM: raise Refusal unless ``account`` may use this reverse-path."""
        if account is None:
            # RFC 5321 4.5.5: the null sender (bounces) must be accepted on the MX.
            if mailbox is not None and self.is_local(mailbox):
                raise Refusal(replies.LOCAL_SENDER_ON_MX)
            return
        if mailbox is None:
            raise Refusal(replies.NULL_SENDER_SUBMISSION)
        if not await self.may_send_as(account, mailbox):
            raise Refusal(replies.sender_not_owned(str(mailbox)))

    async def may_send_as(self, account: Account, mailbox: Mailbox) -> bool:
        """Whether ``mailbox`` is the account's own address or one of a group it owns."""
        if not self.is_local(mailbox):
            return False
        key = local_key(mailbox)
        if key is None:
            return False
        if key in await self._directory.addresses_of(account.login):
            return True
        resolved = await self._directory.resolve(key)
        if resolved is None or resolved.group is None:
            return False
        owned = {group.id for group, role in await self._directory.groups_of(account.login)
                 if role is MemberRole.OWNER}
        return resolved.group.id in owned

    # --- recipients ----------------------------------------------------------------------
    async def route(self, account: Account | None, mailbox: Mailbox) -> Route:
        """RCPT TO: where mail for ``mailbox`` goes, or raise Refusal."""
        if mailbox.is_address_literal:
            raise Refusal(replies.ADDRESS_LITERAL)
        if not self.is_local(mailbox):
            if account is None:
                raise Refusal(replies.RELAY_DENIED)
            address = str(mailbox)
            await self._check_policy(account, address)
            return Route(remote=address)
        key = local_key(mailbox)
        resolved = await self._resolve(key) if key else None
        if resolved is None:
            raise Refusal(replies.UNKNOWN_USER)
        if resolved.account is not None:
            if resolved.account.status is not Status.ACTIVE:
                raise Refusal(replies.DISABLED_MAILBOX)
            if account is not None:
                await self._check_policy(account, f"{key}@{mailbox.domain}")
            return Route(account_ids=(resolved.account.id,))
        assert resolved.group is not None
        if account is None:
            raise Refusal(replies.OUTSIDE_TO_GROUP)
        await self._check_policy(account, f"{key}@{mailbox.domain}")
        members = await self._directory.group_members(resolved.group.name)
        ids = tuple(dict.fromkeys(m.account.id for m in members if m.account.is_active))
        if not ids:
            raise Refusal(replies.EMPTY_GROUP)
        return Route(account_ids=ids)

    async def _check_policy(self, account: Account, address: str) -> None:
        verdict = await self._directory.may_contact(account, address)
        if not verdict.allowed:
            raise Refusal(replies.refused("550 5.7.1", verdict.reason or "not allowed"))
