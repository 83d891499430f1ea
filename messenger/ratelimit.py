"""Request rate limits: a token bucket per (action, user) and per (action, address)
(spec: Client-Server API 3.4 "Rate limiting": 429 M_LIMIT_EXCEEDED with
``retry_after_ms``).

In-process and bounded: at most ``max_keys`` buckets are kept, the least
recently used go first (a forgotten bucket starts full again, which only ever
errs towards letting a request through).  Per-address limits are generous on
purpose: a whole school often reaches the server from one NAT address.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from messenger.rooms.errors import RateLimited


@dataclass(frozen=True)
class RateLimit:
    per_second: float
    burst: float


@dataclass(frozen=True)
class RateLimits:
    """Per action: (per user, per client address); None = not limited."""

    rules: dict[str, tuple[RateLimit | None, RateLimit | None]] = field(default_factory=lambda: {
        "send": (RateLimit(10, 100), RateLimit(300, 3000)),
        "create_room": (RateLimit(0.5, 20), RateLimit(10, 200)),
        "invite": (RateLimit(2, 100), RateLimit(50, 1000)),
        "login": (None, RateLimit(20, 300)),
        "upload": (RateLimit(1, 30), RateLimit(20, 300)),
        "to_device": (RateLimit(20, 500), RateLimit(500, 5000)),
    })

    @classmethod
    def unlimited(cls) -> RateLimits:
        return cls(rules={})


class TokenBucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


class RateLimiter:
    def __init__(self, limits: RateLimits | None = None, *, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or RateLimits()
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[tuple[str, str, str | None], TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, action: str, user: str | None, address: str | None) -> None:
        """Take one token for ``user`` and for ``address``, or raise ``RateLimited``.

        Both buckets are checked before either is charged, so a refused request
        costs nothing."""
        per_user, per_address = self.limits.rules.get(action, (None, None))
        now = self._clock()
        wanted = [(("u", action, user), per_user), (("a", action, address), per_address)]
        buckets = []
        for key, rule in wanted:
            if rule is None or key[2] is None:
                continue
            bucket = self._bucket(key, rule, now)
            if bucket.tokens < 1:
                raise RateLimited((1 - bucket.tokens) / rule.per_second)
            buckets.append(bucket)
        for bucket in buckets:
            bucket.tokens -= 1

    def _bucket(self, key: tuple[str, str, str | None], rule: RateLimit, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(rule.burst, now)
            self._buckets[key] = bucket
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(rule.burst, bucket.tokens + (now - bucket.updated)
                                * rule.per_second)
            bucket.updated = now
        return bucket
