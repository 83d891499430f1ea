"""Recently verified logins, so that a client logging in again and again (a phone
polling every few minutes, mbsync, a desktop client opening a connection per folder)
does not pay an argon2id verification (about 20 ms of CPU) every time.

Like Dovecot's auth cache (``auth_cache_size`` / ``auth_cache_ttl``), but shaped so
that nothing has to be told when a password changes:

* An entry is an HMAC-SHA256, under a random key made per process and never stored,
  of (login, the *stored password hash*, the password).  The Authenticator reads the
  account's row on every login, as before, and looks the digest up with the hash it
  just read: a new password (set anywhere: webmail, Matrix, the admin pages, the
  command line in another process) means a new hash with a new salt, so the old
  entry can never match again.  A suspended, leaver or erased account is refused
  from that same fresh row.  No broadcast between ``serve`` workers is needed.
* Only successes are remembered.  A wrong password makes another digest, misses,
  and goes through argon2id and the throttle exactly as before, so a guess costs
  what it cost.
* An entry lives ``ttl`` seconds from its verification (a hit does not extend it):
  the digests stand for passwords only as long as that, and a memory dump of the
  process reveals the key with them, so they are kept short.  Bounded in number;
  the oldest go first.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable


def _field(text: str) -> bytes:
    """Length-prefixed, so that no two (login, hash, password) triples encode alike."""
    data = text.encode("utf-8", "surrogatepass")
    return len(data).to_bytes(4, "big") + data


class VerifiedLogins:
    """Digests of (login, stored hash, password) verified within the last ``ttl`` seconds."""

    def __init__(self, ttl: float = 600.0, max_entries: int = 20_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._expiry: collections.OrderedDict[bytes, float] = collections.OrderedDict()
        self.hits = 0  # for tests and the benchmark's report

    def _digest(self, login: str, password_hash: str, password: str) -> bytes:
        message = _field(login) + _field(password_hash) + _field(password)
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def __len__(self) -> int:
        return len(self._expiry)

    def verified(self, login: str, password_hash: str, password: str) -> bool:
        """True if exactly this password was verified against exactly this stored hash
        within the last ``ttl`` seconds."""
        if self.ttl <= 0 or not password_hash:
            return False
        digest = self._digest(login, password_hash, password)
        expires = self._expiry.get(digest)
        if expires is None:
            return False
        if expires <= self._clock():
            del self._expiry[digest]
            return False
        self.hits += 1
        return True

    def remember(self, login: str, password_hash: str, password: str) -> None:
        """Call only after argon2id said yes for this stored hash."""
        if self.ttl <= 0 or not password_hash:
            return
        now = self._clock()
        digest = self._digest(login, password_hash, password)
        self._expiry[digest] = now + self.ttl
        self._expiry.move_to_end(digest)
        while len(self._expiry) > self.max_entries:
            self._expiry.popitem(last=False)
        # Entries go in by time, so the expired ones are at the front.
        while self._expiry:
            oldest, expires = next(iter(self._expiry.items()))
            if expires > now:
                break
            del self._expiry[oldest]

    def forget_all(self) -> None:
        self._expiry.clear()
