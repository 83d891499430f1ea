"""Password hashing with argon2id (argon2-cffi), off the event loop.

Parameters follow OWASP's argon2id minimum (19 MiB, t=2, p=1) for passwords
people choose.  Initial passwords the importer generates are random secrets of
about 70 bits, beyond any guessing whatever the hash cost, so they are hashed
with light parameters (4 MiB, t=1) to keep a 2,000-pupil import quick; the
first successful login re-hashes the password with the full parameters
(``needs_rehash``).

argon2-cffi releases the GIL, so hashing and verification run in the hasher's own
small thread pool (``threads``, by default half the machine's cores, at least one):
the event loop keeps running other sessions meanwhile, a storm of logins queues
there instead of taking every core (and a 19 MiB working block per thread), and
the loop's default pool stays free for fsync and the like.  One verification with
the full parameters costs about 21 ms of CPU on the 2-core reference machine.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher as _Argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # argon2 takes any length; a megabyte "password" is an attack


class PasswordRejected(ValueError):
    """The password given is unusable; the message says why (never the password)."""


def check_new_password(password: str) -> str:
    """The school's rule for passwords people choose (the CLI, the messenger's
    password change): at least ``MIN_PASSWORD_LENGTH`` characters."""
    if not password:
        raise PasswordRejected("the password is empty")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordRejected(
            f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordRejected(
            f"the password is too long: use at most {MAX_PASSWORD_LENGTH} characters")
    return password


# Letters and digits that cannot be confused on a printed sheet (no 0/O, 1/l/I).
_READABLE = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class PasswordHasher:
    def __init__(self, *, time_cost: int = 2, memory_cost_kib: int = 19456,
                 parallelism: int = 1, threads: int = 0) -> None:
        self._argon2 = _Argon2(
            time_cost=time_cost, memory_cost=memory_cost_kib, parallelism=parallelism
        )
        self._generated = _Argon2(time_cost=1, memory_cost=4096, parallelism=1)
        # Verified against when a login name does not exist, so an unknown
        # login costs the same time as a wrong password.
        self._dummy_hash = self._argon2.hash(secrets.token_urlsafe(16))
        self.threads = threads or max(1, (os.cpu_count() or 2) // 2)
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="argon2")

    def hash_sync(self, password: str) -> str:
        return self._argon2.hash(password)

    def hash_generated_sync(self, password: str) -> str:
        """For machine-generated random passwords only (see the module docstring)."""
        return self._generated.hash(password)

    def needs_rehash(self, password_hash: str) -> bool:
        """True for hashes made with other parameters (e.g. generated passwords)."""
        try:
            return self._argon2.check_needs_rehash(password_hash)
        except InvalidHashError:
            return False

    def verify_sync(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._argon2.verify(password_hash or self._dummy_hash, password) and bool(
                password_hash
            )
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self.hash_sync, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self.verify_sync, password_hash, password)

    def close(self) -> None:
        """Let the pool's threads end once their work is done."""
        self._pool.shutdown(wait=False)


def generate_password(length: int = 12) -> str:
    return "".join(secrets.choice(_READABLE) for _ in range(length))
