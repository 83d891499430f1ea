"""A background loop of ``schulhof serve``: wait, run, repeat until stopped.

The daily retention run and the room digests are both such loops; a failed run
is logged and the next one tries again, never taking the server down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable


class Repeating:
    """Runs ``work`` after each ``seconds_to_next()`` until ``stop``."""

    def __init__(self, name: str, seconds_to_next: Callable[[], float],
                 work: Callable[[], Awaitable[object]], failure_event: str,
                 log: logging.Logger) -> None:
        self._name = name
        self._seconds_to_next = seconds_to_next
        self._work = work
        self._failure_event = failure_event
        self._log = log
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self._name)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._seconds_to_next())
            try:
                await self._work()
            except Exception:
                self._log.exception("event=%s", self._failure_event)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
