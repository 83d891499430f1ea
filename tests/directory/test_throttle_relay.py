"""Login throttling across processes (directory.throttle_relay, issue 15)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from directory.auth import LoginThrottle
from directory.throttle_relay import ThrottleRelay, decode, encode
from tests.support.broadcast import PairedBroadcast


@settings(deadline=None)  # pure functions; a loaded machine is no failure
@given(st.text(max_size=50), st.text(max_size=50), st.booleans())
def test_outcomes_round_trip(account: str, ip: str, failed: bool) -> None:
    assert decode(encode(account, ip, failed)) == (account, ip, failed)


@settings(deadline=None)  # pure functions; a loaded machine is no failure
@given(st.text(max_size=80))
def test_anything_else_is_a_value_error(payload: str) -> None:
    try:
        decode(payload)
    except ValueError:
        pass


@pytest.mark.parametrize("payload", ["", "[]", '["a", "b"]', '["a", "b", 1]', '[1, "b", true]'])
def test_malformed_payloads(payload: str) -> None:
    with pytest.raises(ValueError):
        decode(payload)


def test_failures_on_one_process_lock_the_pair_on_the_other() -> None:
    now = [1000.0]
    here_b, there_b = PairedBroadcast.pair()
    here = LoginThrottle(free_failures=3, clock=lambda: now[0])
    there = LoginThrottle(free_failures=3, clock=lambda: now[0])
    ThrottleRelay(here, here_b)
    ThrottleRelay(there, there_b)
    for _ in range(4):
        here.failed("ben", "192.0.2.7")
    assert there.retry_after("ben", "192.0.2.7") == pytest.approx(1.0)
    assert there.retry_after("ben", "192.0.2.8") == 0.0  # another address: not locked
    # A success elsewhere ends the pair's count everywhere, and is not echoed back.
    there.succeeded("ben", "192.0.2.7")
    assert here.retry_after("ben", "192.0.2.7") == 0.0
    assert len(there_b.sent) == 1 and len(here_b.sent) == 4
