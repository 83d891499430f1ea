"""The retry schedule: exponential back-off, last try at the give-up time, one warning."""

from __future__ import annotations

import datetime as dt
import itertools

from hypothesis import given
from hypothesis import strategies as st

from mailserver.outbound.schedule import RetrySchedule

T0 = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)
S = dt.timedelta(seconds=1)


def schedule(first: float = 300, give_up_hours: float = 120, warn_hours: float = 4,
             **kwargs: object) -> RetrySchedule:
    return RetrySchedule(first * S, dt.timedelta(hours=give_up_hours),
                         dt.timedelta(hours=warn_hours), **kwargs)


def test_doubles_from_first_retry_up_to_the_cap() -> None:
    s = schedule(first=300)
    assert [s.delay(n).total_seconds() for n in range(1, 8)] == [
        300, 600, 1200, 2400, 3600, 3600, 3600]


def test_first_retry_above_cap_is_kept() -> None:
    assert schedule(first=7200).delay(5) == dt.timedelta(seconds=7200)


def test_from_settings_units() -> None:
    s = RetrySchedule.from_settings(300, 120, 4)
    assert s.first_retry == dt.timedelta(minutes=5)
    assert s.give_up_after == dt.timedelta(days=5)
    assert s.warn_after == dt.timedelta(hours=4)


def test_last_attempt_lands_on_the_give_up_time_then_bounce() -> None:
    s = schedule(first=3600, give_up_hours=2)
    assert s.next_attempt(T0, 1, T0) == T0 + dt.timedelta(hours=1)
    # 1h30 in: the next try would be after the deadline, so it is at the deadline.
    assert s.next_attempt(T0, 2, T0 + dt.timedelta(minutes=90)) == T0 + dt.timedelta(hours=2)
    assert s.next_attempt(T0, 3, T0 + dt.timedelta(hours=2)) is None


def test_whole_schedule_from_defaults() -> None:
    s = RetrySchedule.from_settings(300, 120, 4)
    now, attempts, tries = T0, 1, [T0]
    while (nxt := s.next_attempt(T0, attempts, now)) is not None:
        now, attempts = nxt, attempts + 1
        tries.append(now)
    assert tries[-1] == T0 + dt.timedelta(hours=120)
    assert 100 < len(tries) < 140  # hourly after the ramp-up
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(tries)]
    assert gaps[:5] == [300, 600, 1200, 2400, 3600]


def test_warning_once_after_the_delay() -> None:
    s = schedule(warn_hours=4)
    assert not s.should_warn(T0, T0 + dt.timedelta(hours=3), warned=False)
    assert s.should_warn(T0, T0 + dt.timedelta(hours=4), warned=False)
    assert not s.should_warn(T0, T0 + dt.timedelta(hours=5), warned=True)
    assert not schedule(warn_hours=10, give_up_hours=5).should_warn(
        T0, T0 + dt.timedelta(hours=11), warned=False)


@given(first=st.floats(1, 10_000), attempts=st.integers(1, 10_000),
       give_up=st.floats(0.01, 500), elapsed=st.floats(0, 600 * 3600))
def test_never_past_the_deadline_never_shrinking(first: float, attempts: int, give_up: float,
                                                 elapsed: float) -> None:
    s = schedule(first=first, give_up_hours=give_up)
    assert s.delay(attempts + 1) >= s.delay(attempts) >= s.first_retry
    now = T0 + dt.timedelta(seconds=elapsed)
    nxt = s.next_attempt(T0, attempts, now)
    if now >= s.give_up_at(T0):
        assert nxt is None
    else:
        assert nxt is not None and now < nxt <= s.give_up_at(T0)
