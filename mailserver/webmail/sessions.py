"""Webmail login sessions: a random token in a cookie, the account kept here.

Sessions live in memory (a restart logs everyone out, which is acceptable
for a web page and keeps no secrets on disk).  A session ends after
``idle`` seconds without a request (school computers are shared: 30 minutes
by default) and at the latest after ``lifetime``.  Each carries its own CSRF
token for the forms (compared in constant time).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class WebSession:
    token: str
    account_id: int
    login: str
    csrf: str
    created: float
    last_seen: float

    def csrf_ok(self, given: str) -> bool:
        return hmac.compare_digest(self.csrf.encode(), given.encode())


class Sessions:
    def __init__(self, *, idle: float = 30 * 60.0, lifetime: float = 12 * 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._idle = idle
        self._lifetime = lifetime
        self._clock = clock
        self._by_token: dict[str, WebSession] = {}

    def create(self, account_id: int, login: str) -> WebSession:
        self._expire()
        now = self._clock()
        session = WebSession(secrets.token_urlsafe(32), account_id, login,
                             secrets.token_urlsafe(32), now, now)
        self._by_token[session.token] = session
        return session

    def get(self, token: str | None) -> WebSession | None:
        """The live session of ``token`` (its idle clock restarts), or None."""
        session = self._by_token.get(token or "")
        if session is None:
            return None
        now = self._clock()
        if now - session.last_seen > self._idle or now - session.created > self._lifetime:
            del self._by_token[session.token]
            return None
        session.last_seen = now
        return session

    def end(self, token: str | None) -> None:
        self._by_token.pop(token or "", None)

    def end_account(self, account_id: int, keep: str | None = None) -> None:
        """End every session of the account (but ``keep``: the one changing the password)."""
        for token in [t for t, s in self._by_token.items()
                      if s.account_id == account_id and t != keep]:
            del self._by_token[token]

    def __len__(self) -> int:
        return len(self._by_token)

    def _expire(self) -> None:
        now = self._clock()
        for token in [t for t, s in self._by_token.items()
                      if now - s.last_seen > self._idle or now - s.created > self._lifetime]:
            del self._by_token[token]
