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

Address lookups, group members and role-policy verdicts are reused per
service (mailserver.smtp.lookup_cache): a mail to a class of 30 asked the
directory four questions per message, more than half of the MX's work for
it.  Every directory change forgets them at once (``forget``, called on the
directory's change notifications, across ``serve`` workers too: conf wires
it), so a suspended account or a pupil who left a group gets nothing more
(issue 18).  ``SmtpConfig.directory_cache_seconds`` (5 s) only bounds changes
nobody announced: made by a process outside the school's broadcast (the
admin command line), an account or policy change then takes up to that long.
"""

from __future__ import annotations

from dataclasses import dataclass

from directory.model import Account, MemberRole, Status
from directory.policy import Verdict
from directory.service import Directory
from mailserver.smtp import replies
from mailserver.smtp.addresses import Mailbox, local_key
from mailserver.smtp.lookup_cache import TtlCache


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
    group: str | None = None  # the directory group's name when the address is a group's


class Router:
    def __init__(self, directory: Directory, local_domains: frozenset[str], *,
                 cache_seconds: float = 0.0) -> None:
        self._directory = directory
        self._local_domains = local_domains
        self._caches = (TtlCache(directory.resolve, cache_seconds),
                        TtlCache(self._active_members, cache_seconds),
                        TtlCache(self._verdict, cache_seconds))
        self._resolve = self._caches[0].get
        self._members = self._caches[1].get
        self._verdicts = self._caches[2].get

    def forget(self) -> None:
        """The directory changed: ask it again from the next lookup on."""
        for cache in self._caches:
            cache.clear()

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
        ids = await self._members(resolved.group.name)
        if not ids:
            raise Refusal(replies.EMPTY_GROUP)
        return Route(account_ids=ids, group=resolved.group.name)

    async def _active_members(self, group: str) -> tuple[int, ...]:
        members = await self._directory.group_members(group)
        return tuple(dict.fromkeys(m.account.id for m in members if m.account.is_active))

    async def _verdict(self, key: tuple[Account, str]) -> Verdict:
        return await self._directory.may_contact(*key)

    async def _check_policy(self, account: Account, address: str) -> None:
        verdict = await self._verdicts((account, address.lower()))
        if not verdict.allowed:
            raise Refusal(replies.refused("550 5.7.1", verdict.reason or "not allowed"))
