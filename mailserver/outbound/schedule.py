"""When to try a queued recipient again, when to warn, when to give up.

RFC 5321 4.5.4.1: retry intervals of at least 30 minutes are recommended
and give-up times of 4-5 days; we start at ``first_retry`` (settings
``federation.first_retry_seconds``) and double each time up to
``max_interval``.  The last attempt is placed exactly at the give-up time,
so a recipient is never bounced earlier, nor much later, than promised.
RFC 3464 "delayed" DSN after ``warn_after`` (``delay_warning_hours``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class RetrySchedule:
    first_retry: dt.timedelta
    give_up_after: dt.timedelta
    warn_after: dt.timedelta
    factor: float = 2.0
    max_interval: dt.timedelta = dt.timedelta(hours=1)

    @classmethod
    def from_settings(cls, first_retry_seconds: float, retry_give_up_hours: float,
                      delay_warning_hours: float) -> RetrySchedule:
        return cls(dt.timedelta(seconds=first_retry_seconds),
                   dt.timedelta(hours=retry_give_up_hours),
                   dt.timedelta(hours=delay_warning_hours))

    def delay(self, attempts: int) -> dt.timedelta:
        """The wait after the ``attempts``-th failed attempt (1 = the first)."""
        cap = max(self.max_interval, self.first_retry)
        exponent = max(0, attempts - 1)
        # Compare in float seconds before building a timedelta: factor**n overflows it.
        seconds = self.first_retry.total_seconds()
        cap_seconds = cap.total_seconds()
        for _ in range(exponent):
            seconds *= self.factor
            if seconds >= cap_seconds:
                return cap
        return dt.timedelta(seconds=min(seconds, cap_seconds))

    def give_up_at(self, created_at: dt.datetime) -> dt.datetime:
        return created_at + self.give_up_after

    def next_attempt(self, created_at: dt.datetime, attempts: int,
                     now: dt.datetime) -> dt.datetime | None:
        """When to try again after a temporary failure; None: give up now (bounce)."""
        deadline = self.give_up_at(created_at)
        if now >= deadline:
            return None
        return min(now + self.delay(attempts), deadline)

    def should_warn(self, created_at: dt.datetime, now: dt.datetime, warned: bool) -> bool:
        """A "delayed" DSN is due: once, and only if giving up is still ahead."""
        if warned or self.warn_after >= self.give_up_after:
            return False
        return now - created_at >= self.warn_after
