"""Directory answers reused for a few seconds by one SMTP service.

On a busy MX most mail goes to the same people, and a teacher's mail to a
class asks the same questions (who is in 5a, may she write to 5a) for every
message; each answer is a read transaction.  ``TtlCache`` keeps answers
(including "no such address") for ``ttl`` seconds, bounded in size, and lets
concurrent misses for one key share one lookup (single flight): parallel
connections tend to ask the same thing at the same moment.  ``clear`` forgets
everything at once (the directory changed): a lookup still in flight then
answers its waiters but is not kept, since it may have read the old state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """``load(key)`` results for ``ttl`` seconds; ``ttl <= 0`` asks ``load`` every time."""

    def __init__(self, load: Callable[[K], Awaitable[V]], ttl: float,
                 max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._load = load
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._inflight: dict[K, asyncio.Future[V]] = {}
        self._generation = 0  # bumped by clear(): older lookups are not kept

    def clear(self) -> None:
        """Forget every answer; lookups in flight are not kept when they finish."""
        self._generation += 1
        self._entries.clear()
        self._inflight.clear()

    async def get(self, key: K) -> V:
        if self._ttl <= 0:
            return await self._load(key)
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        lookup = self._inflight.get(key)
        if lookup is None:
            lookup = asyncio.ensure_future(self._load(key))
            self._inflight[key] = lookup
            generation = self._generation
            lookup.add_done_callback(lambda done: self._settle(key, done, generation))
        # shield: one waiter going away must not cancel the lookup the others share.
        return await asyncio.shield(lookup)

    def _settle(self, key: K, lookup: asyncio.Future[V], generation: int) -> None:
        if self._inflight.get(key) is lookup:
            del self._inflight[key]
        if lookup.cancelled() or lookup.exception() is not None:
            return  # not cached; the waiters saw the error
        if generation != self._generation:
            return  # cleared meanwhile: the answer may predate the change
        now = self._clock()
        if len(self._entries) >= self._max_entries:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
        self._entries[key] = (now + self._ttl, lookup.result())
