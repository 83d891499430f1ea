"""Where a request's time went, phase by phase (for ``Server-Timing``).

A front end (the webmail's ``timing`` middleware) opens a ``RequestTimings``
for the task serving one request; code below it adds the seconds it spent
in named parts (``phase("folders")``, the database layer's pool checkout and
statement time).  Outside a request nothing is recorded and the calls cost
one context-variable look-up.  A ``ContextVar`` and not a global: each asyncio
task (each request) sees only its own record, whatever school it belongs to.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token


class RequestTimings:
    """Seconds per named part of one request (parts may repeat and add up)."""

    def __init__(self) -> None:
        self.parts: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.parts[name] = self.parts.get(name, 0.0) + seconds


_CURRENT: ContextVar[RequestTimings | None] = ContextVar("request_timings", default=None)


def start() -> tuple[RequestTimings, Token[RequestTimings | None]]:
    timings = RequestTimings()
    return timings, _CURRENT.set(timings)


def stop(token: Token[RequestTimings | None]) -> None:
    _CURRENT.reset(token)


def add(name: str, seconds: float) -> None:
    timings = _CURRENT.get()
    if timings is not None:
        timings.add(name, seconds)


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Time the block as part ``name`` of the current request."""
    started = time.perf_counter()
    try:
        yield
    finally:
        add(name, time.perf_counter() - started)
