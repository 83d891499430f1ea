"""The daily retention job of ``schulhof serve`` (``[retention]``, conf.admin.retention).

Runs once a day at ``retention.daily_at`` (server local time); a failed run is
logged and tried again the next day, never taking the server down.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from conf.wiring.repeating import Repeating

if TYPE_CHECKING:
    from conf.app import School, Service

log = logging.getLogger("schulhof")


def seconds_until(now: dt.datetime, daily_at: str) -> float:
    """Seconds from ``now`` (aware) to the next ``HH:MM`` in ``now``'s time zone."""
    hour, _, minute = daily_at.partition(":")
    target = now.replace(hour=int(hour), minute=int(minute or 0), second=0, microsecond=0)
    if target <= now:
        target += dt.timedelta(days=1)
    return (target - now).total_seconds()


class RetentionJob:
    def __init__(self, school: School) -> None:
        self.school = school
        self._loop = Repeating("retention", self._seconds_to_next, self._run_once,
                               "retention_failed", log)

    async def start(self) -> list[str]:
        daily_at = self.school.settings.retention.daily_at
        self._seconds_to_next()  # a bad value fails now
        self._loop.start()
        return [f"service=retention daily_at={daily_at}"]

    def _seconds_to_next(self) -> float:
        return seconds_until(dt.datetime.now().astimezone(),
                             self.school.settings.retention.daily_at)

    async def _run_once(self) -> None:
        from conf.admin.retention import run_retention

        await run_retention(self.school, dt.datetime.now(dt.UTC))

    async def stop(self) -> None:
        await self._loop.stop()


def build(school: School) -> list[Service]:
    # Once per school: only in serve's first worker (school.singletons).
    return [RetentionJob(school)] if school.settings.retention.run_daily \
        and school.singletons else []
