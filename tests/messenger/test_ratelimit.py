"""Token buckets: burst then steady rate, per user and per address, bounded memory;
and the 429 a client sees."""

from __future__ import annotations

import time

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conf.app import School
from directory.model import Role
from messenger.ratelimit import RateLimit, RateLimiter, RateLimits
from messenger.rooms.errors import RateLimited
from messenger.server import MatrixServer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock, **rules: tuple[RateLimit | None, RateLimit | None]) -> RateLimiter:
    return RateLimiter(RateLimits(rules=rules), clock=clock, max_keys=50)


def test_burst_then_rate_per_user() -> None:
    clock = Clock()
    limits = limiter(clock, send=(RateLimit(2, 3), None))
    for _ in range(3):
        limits.check("send", "@a:s", "10.0.0.1")
    with pytest.raises(RateLimited) as refused:
        limits.check("send", "@a:s", "10.0.0.1")
    assert refused.value.retry_after == pytest.approx(0.5)
    limits.check("send", "@b:s", "10.0.0.1")  # another user has their own bucket
    clock.now += 0.5
    limits.check("send", "@a:s", "10.0.0.1")  # one token came back
    with pytest.raises(RateLimited):
        limits.check("send", "@a:s", "10.0.0.1")
    limits.check("other", "@a:s", "10.0.0.1")  # actions without rules are free


def test_address_limit_and_refusals_cost_nothing() -> None:
    clock = Clock()
    limits = limiter(clock, login=(None, RateLimit(1, 2)), send=(RateLimit(1, 1),
                                                                  RateLimit(1, 5)))
    limits.check("login", None, "10.0.0.9")
    limits.check("login", None, "10.0.0.9")
    with pytest.raises(RateLimited):
        limits.check("login", None, "10.0.0.9")
    limits.check("login", None, "10.0.0.10")
    limits.check("send", "@a:s", "10.0.0.1")
    for _ in range(3):  # refused for the user: the address bucket is not charged
        with pytest.raises(RateLimited):
            limits.check("send", "@a:s", "10.0.0.1")
    for user in ("@b:s", "@c:s", "@d:s", "@e:s"):
        limits.check("send", user, "10.0.0.1")
    with pytest.raises(RateLimited):
        limits.check("send", "@f:s", "10.0.0.1")


@given(st.lists(st.tuples(st.integers(0, 500), st.floats(0, 2)), max_size=300))
def test_memory_is_bounded_and_tokens_stay_in_range(steps: list[tuple[int, float]]) -> None:
    clock = Clock()
    limits = limiter(clock, send=(RateLimit(1, 3), RateLimit(100, 100)))
    for user, dt in steps:
        clock.now += dt
        try:
            limits.check("send", f"@u{user}:s", "10.0.0.1")
        except RateLimited as exc:
            assert exc.retry_after > 0
        assert len(limits) <= 50
    for bucket in limits._buckets.values():
        assert -1e-9 <= bucket.tokens <= 100


async def test_client_gets_429_with_retry_after(school: School) -> None:
    await school.directory.create_account(role=Role.TEACHER, login="lehrer",
                                          password="correct horse battery")
    server = MatrixServer(db=school.db, directory=school.directory,
                          authenticator=school.authenticator, server_name="schule.test",
                          bind="127.0.0.1", port=0, rate_limits=RateLimits(rules={
                              "create_room": (RateLimit(0.1, 2), None),
                              "login": (None, RateLimit(0.1, 3))}))
    await server.start()
    base = server.base_url + "/_matrix/client/v3"
    body = {"type": "m.login.password", "password": "correct horse battery",
            "identifier": {"type": "m.id.user", "user": "lehrer"}}
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/login", json=body) as r:
                token = (await r.json())["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            statuses = []
            started = time.monotonic()
            for _ in range(3):
                async with http.post(f"{base}/createRoom", json={}, headers=auth) as r:
                    statuses.append(r.status)
                    last = await r.json()
            taken_ms = (time.monotonic() - started) * 1000
            assert statuses == [200, 200, 429]
            # One token per 10 s: the wait is 10 s less what refilled while the
            # three requests ran (over a second on a busy machine).
            assert last["errcode"] == "M_LIMIT_EXCEEDED"
            assert 10000 - taken_ms - 100 < last["retry_after_ms"] <= 10000
            wrong = {**body, "password": "nope"}
            logins = []
            for _ in range(3):
                async with http.post(f"{base}/login", json=wrong) as r:
                    logins.append((r.status, (await r.json())["errcode"]))
            assert logins[-1] == (429, "M_LIMIT_EXCEEDED")
    finally:
        await server.stop()
