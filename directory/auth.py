"""The authentication API every protocol uses (SMTP AUTH, IMAP LOGIN, Matrix login, webmail).

Login throttling (issue 19.7, issue 11.1) is shaped by how schools use it: hundreds
of pupils share one NAT address, and a teacher must not be locked out by someone
guessing at their account from elsewhere.  So the throttle keeps three counts:

* per (account, IP) -- the primary one: after ``free_failures`` failures each
  further failure locks this pair for a growing delay (1 s, 2 s, 4 s ... up to
  ``max_delay``).  One guesser is slowed down, nobody else;
* per account, from all addresses: only far above what one address may try
  (``account_free_failures``), and never longer than a minute
  (``account_max_delay``, capped at 60 s): a distributed guess is slowed, the
  owner is never locked out for long;
* per IP, the number of *distinct* accounts that failed from it: past a
  generous ``ip_failing_accounts`` (a password spray across the school) that
  address is slowed down.  Many pupils mistyping behind one NAT stay far below.

A count is forgotten ``window`` seconds after its *last* failure (not its first:
one guess every few minutes keeps it alive).  An (account, IP) pair that logged in
successfully before is "known": its next login is only subject to its own pair
count, never to the account's or the address's, so others' failures cannot lock
the owner out of their usual place.  Attempts during a lock are refused without
checking the password, so parallel connections gain nothing.  Suspended and
leaver accounts are refused like wrong passwords.

A login whose password was verified a short while ago against the same stored hash
skips argon2id (``directory.verified_logins``); everything else above is unchanged
for it, and a failure never takes that shortcut.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from directory.model import Account, DirectoryError
from directory.passwords import PasswordHasher
from directory.verified_logins import VerifiedLogins

#: The per-account lock never lasts longer than this, whatever the settings say.
ACCOUNT_LOCK_CAP = 60.0
# Memory bounds: counts and known pairs kept at most (a spray of addresses
# cannot grow them without bound; the oldest are dropped first).
_MAX_ENTRIES = 100_000
_MAX_KNOWN = 200_000
_K = TypeVar("_K")


class AuthenticationFailed(DirectoryError):
    """Wrong login or password, or an account that may not log in."""


class AuthenticationThrottled(DirectoryError):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many failed logins, retry in {retry_after:.0f} s")
        self.retry_after = retry_after


def growing_delay(excess: int, cap: float) -> float:
    """0 for ``excess`` <= 0, then 1, 2, 4 ... seconds, at most ``cap``."""
    if excess <= 0:
        return 0.0
    return min(cap, 2.0 ** min(excess - 1, 62))


@dataclass
class _Count:
    failures: int = 0
    last_at: float = 0.0


@dataclass
class _AddressCount:
    accounts: dict[str, None] = field(default_factory=dict)  # an ordered set
    last_at: float = 0.0


@dataclass
class LoginThrottle:
    """The three counts described in the module docstring; ``clock`` in seconds."""

    free_failures: int = 3
    max_delay: float = 30.0
    window: float = 900.0
    account_free_failures: int = 50
    account_max_delay: float = ACCOUNT_LOCK_CAP
    ip_failing_accounts: int = 300
    clock: Callable[[], float] = time.monotonic
    # Told every failure and success (directory.throttle_relay), so the school's
    # other processes count it too: (account, ip, failed).  None: one process.
    relay: Callable[[str, str, bool], None] | None = None
    _pairs: dict[tuple[str, str], _Count] = field(default_factory=dict)
    _accounts: dict[str, _Count] = field(default_factory=dict)
    _addresses: dict[str, _AddressCount] = field(default_factory=dict)
    _known: collections.OrderedDict[tuple[str, str], None] = field(
        default_factory=collections.OrderedDict)

    def retry_after(self, account: str, ip: str) -> float:
        """Seconds until ``account`` may try again from ``ip`` (0: now)."""
        now = self.clock()
        wait = self._pair_lock(account, ip, now)
        if (account, ip) not in self._known:
            wait = max(wait, self._account_lock(account, now), self._address_lock(ip, now))
        return max(wait, 0.0)

    def check(self, account: str, ip: str) -> None:
        """Raise AuthenticationThrottled while ``account`` may not try from ``ip``."""
        wait = self.retry_after(account, ip)
        if wait > 0:
            raise AuthenticationThrottled(wait)

    def failed(self, account: str, ip: str) -> None:
        self.record(account, ip, failed=True)
        if self.relay is not None:
            self.relay(account, ip, True)

    def succeeded(self, account: str, ip: str) -> None:
        """The pair's count ends, the account no longer fails from ``ip``, the pair is known.
        The account's own count stays: a guesser elsewhere is not reset by the owner."""
        self.record(account, ip, failed=False)
        if self.relay is not None:
            self.relay(account, ip, False)

    def record(self, account: str, ip: str, *, failed: bool) -> None:
        """Count a failure or a success here only (another process may have seen it)."""
        if failed:
            self._failed(account, ip)
        else:
            self._succeeded(account, ip)

    def _failed(self, account: str, ip: str) -> None:
        now = self.clock()
        self._count(self._pairs, (account, ip), now)
        self._count(self._accounts, account, now)
        address = self._addresses.get(ip)
        if address is None or now - address.last_at > self.window:
            address = self._addresses[ip] = _AddressCount()
        address.accounts[account] = None
        if len(address.accounts) > 2 * self.ip_failing_accounts + 10:
            del address.accounts[next(iter(address.accounts))]  # beyond any threshold
        address.last_at = now
        if max(len(self._pairs), len(self._accounts), len(self._addresses)) > _MAX_ENTRIES:
            self._forget_old(now)

    def _succeeded(self, account: str, ip: str) -> None:
        self._pairs.pop((account, ip), None)
        address = self._addresses.get(ip)
        if address is not None:
            address.accounts.pop(account, None)
        self._known[(account, ip)] = None
        self._known.move_to_end((account, ip))
        while len(self._known) > _MAX_KNOWN:
            self._known.popitem(last=False)

    def _count(self, counts: dict[_K, _Count], key: _K, now: float) -> None:
        count = counts.get(key)
        if count is None or now - count.last_at > self.window:
            count = counts[key] = _Count()  # a new count after a quiet window
        count.failures += 1
        count.last_at = now

    # --- the three locks ---------------------------------------------------------------

    def _pair_lock(self, account: str, ip: str, now: float) -> float:
        count = self._pairs.get((account, ip))
        if count is None:
            return 0.0
        delay = growing_delay(count.failures - self.free_failures, self.max_delay)
        return count.last_at + delay - now

    def _account_lock(self, account: str, now: float) -> float:
        count = self._accounts.get(account)
        if count is None:
            return 0.0
        cap = min(self.account_max_delay, ACCOUNT_LOCK_CAP)
        delay = growing_delay(count.failures - self.account_free_failures, cap)
        return count.last_at + delay - now

    def _address_lock(self, ip: str, now: float) -> float:
        address = self._addresses.get(ip)
        if address is None:
            return 0.0
        delay = growing_delay(len(address.accounts) - self.ip_failing_accounts,
                              self.max_delay)
        return address.last_at + delay - now

    def _forget_old(self, now: float) -> None:
        _forget_old(self._pairs, now - self.window)
        _forget_old(self._accounts, now - self.window)
        _forget_old(self._addresses, now - self.window)


class _Stamped(Protocol):
    last_at: float


_S = TypeVar("_S", bound=_Stamped)


def _forget_old(counts: dict[_K, _S], before: float) -> None:
    """Drop the counts last touched before ``before``; if still too many (a spray
    inside the window), the oldest half: dicts keep insertion order."""
    for key in [k for k, c in counts.items() if c.last_at < before]:
        del counts[key]
    if len(counts) > _MAX_ENTRIES:
        for key in list(counts)[: len(counts) // 2]:
            del counts[key]


class CredentialSource(Protocol):
    """What the authenticator needs of the directory service."""

    local_domains: frozenset[str]

    async def credentials_for(self, login: str) -> tuple[Account, str] | None: ...

    async def replace_password_hash(self, login: str, old_hash: str,
                                    new_hash: str) -> bool: ...


class Authenticator:
    """Verify login + password in constant time, with throttling."""

    def __init__(self, directory: CredentialSource, hasher: PasswordHasher,
                 throttle: LoginThrottle, verified: VerifiedLogins | None = None) -> None:
        self._directory = directory
        self._hasher = hasher
        self._throttle = throttle
        #: Recent successes (per process; see directory.verified_logins).  None: none kept.
        self.verified = verified

    async def authenticate(self, login: str, password: str, client_ip: str = "") -> Account:
        login = login.strip().lower()
        if "@" in login:
            local, _, domain = login.rpartition("@")
            # A foreign address never logs in here.
            login = local if domain in self._directory.local_domains else ""
        self._throttle.check(login, client_ip)
        found = await self._directory.credentials_for(login)
        account, password_hash = found if found else (None, None)
        if (account is not None and account.is_active and password_hash
                and self.verified is not None
                and self.verified.verified(login, password_hash, password)):
            self._throttle.succeeded(login, client_ip)
            return account
        ok = await self._hasher.verify(password_hash, password)
        if not ok or account is None or not account.is_active:
            self._throttle.failed(login, client_ip)
            raise AuthenticationFailed("invalid login or password")
        self._throttle.succeeded(login, client_ip)
        if password_hash and self._hasher.needs_rehash(password_hash):
            # Generated initial passwords carry light parameters: upgrade them now.
            new_hash = await self._hasher.hash(password)
            replaced = await self._directory.replace_password_hash(login, password_hash,
                                                                   new_hash)
            password_hash = new_hash if replaced else None  # else a new password won
        if password_hash and self.verified is not None:
            self.verified.remember(login, password_hash, password)
        return account
