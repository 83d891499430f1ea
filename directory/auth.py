"""The authentication API every protocol uses (SMTP AUTH, IMAP LOGIN, Matrix login).

Failed attempts are counted per account and per client IP within a window;
past ``free_failures`` each further failure locks that key for a growing
delay (1 s, 2 s, 4 s ... up to ``max_delay``).  Attempts during a lock are
refused without checking the password, so parallel connections gain nothing.
Suspended and leaver accounts are refused like wrong passwords.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from directory.model import Account, DirectoryError
from directory.passwords import PasswordHasher


class AuthenticationFailed(DirectoryError):
    """Wrong login or password, or an account that may not log in."""


class AuthenticationThrottled(DirectoryError):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many failed logins, retry in {retry_after:.0f} s")
        self.retry_after = retry_after


@dataclass
class _FailureCount:
    failures: int = 0
    first_at: float = 0.0
    locked_until: float = 0.0


@dataclass
class LoginThrottle:
    free_failures: int = 3
    max_delay: float = 30.0
    window: float = 900.0
    clock: Callable[[], float] = time.monotonic
    _counts: dict[str, _FailureCount] = field(default_factory=dict)

    def check(self, *keys: str) -> None:
        now = self.clock()
        wait = max((self._counts[k].locked_until - now for k in keys if k in self._counts),
                   default=0.0)
        if wait > 0:
            raise AuthenticationThrottled(wait)

    def failed(self, *keys: str) -> None:
        now = self.clock()
        for key in keys:
            count = self._counts.get(key)
            if count is None or now - count.first_at > self.window:
                count = self._counts[key] = _FailureCount(first_at=now)
            count.failures += 1
            excess = count.failures - self.free_failures
            if excess > 0:
                count.locked_until = now + min(self.max_delay, 2.0 ** (excess - 1))
        if len(self._counts) > 100_000:  # bound memory under a spray of IPs
            self._forget_old(now)

    def succeeded(self, key: str) -> None:
        self._counts.pop(key, None)

    def _forget_old(self, now: float) -> None:
        for key in [k for k, c in self._counts.items() if now - c.first_at > self.window]:
            del self._counts[key]
        # Still too many (a spray from many IPs inside the window): drop the oldest
        # half. Dicts keep insertion order, so the first keys are the oldest.
        if len(self._counts) > 100_000:
            for key in list(self._counts)[: len(self._counts) // 2]:
                del self._counts[key]


class CredentialSource(Protocol):
    """What the authenticator needs of the directory service."""

    local_domains: frozenset[str]

    async def credentials_for(self, login: str) -> tuple[Account, str] | None: ...

    async def replace_password_hash(self, login: str, old_hash: str,
                                    new_hash: str) -> bool: ...


class Authenticator:
    """Verify login + password in constant time, with throttling."""

    def __init__(self, directory: CredentialSource, hasher: PasswordHasher,
                 throttle: LoginThrottle) -> None:
        self._directory = directory
        self._hasher = hasher
        self._throttle = throttle

    async def authenticate(self, login: str, password: str, client_ip: str = "") -> Account:
        login = login.strip().lower()
        if "@" in login:
            local, _, domain = login.rpartition("@")
            # A foreign address never logs in here.
            login = local if domain in self._directory.local_domains else ""
        account_key, ip_key = f"account:{login}", f"ip:{client_ip}"
        self._throttle.check(account_key, ip_key)
        found = await self._directory.credentials_for(login)
        account, password_hash = found if found else (None, None)
        ok = await self._hasher.verify(password_hash, password)
        if not ok or account is None or not account.is_active:
            self._throttle.failed(account_key, ip_key)
            raise AuthenticationFailed("invalid login or password")
        self._throttle.succeeded(account_key)
        if password_hash and self._hasher.needs_rehash(password_hash):
            # Generated initial passwords carry light parameters: upgrade them now.
            new_hash = await self._hasher.hash(password)
            await self._directory.replace_password_hash(login, password_hash, new_hash)
        return account
