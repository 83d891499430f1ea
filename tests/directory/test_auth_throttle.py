"""LoginThrottle (and the Authenticator's use of it) on a fake clock."""

from __future__ import annotations

import pytest

from directory.auth import (
    AuthenticationFailed,
    AuthenticationThrottled,
    Authenticator,
    LoginThrottle,
)
from directory.model import Account, Role, Status


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def throttle(clock: FakeClock) -> LoginThrottle:
    return LoginThrottle(free_failures=3, max_delay=30.0, window=900.0, clock=clock)


def locked_for(throttle: LoginThrottle, *keys: str) -> float:
    """How long ``keys`` are locked now (0 when an attempt may go ahead)."""
    try:
        throttle.check(*keys)
    except AuthenticationThrottled as exc:
        assert exc.retry_after > 0
        return exc.retry_after
    return 0.0


def test_the_first_failures_are_free(throttle: LoginThrottle) -> None:
    for _ in range(3):
        assert locked_for(throttle, "account:lea") == 0
        throttle.failed("account:lea")
    assert locked_for(throttle, "account:lea") == 0


def test_each_further_failure_locks_for_a_doubling_delay_up_to_the_cap(
        throttle: LoginThrottle, clock: FakeClock) -> None:
    for _ in range(3):
        throttle.failed("account:lea")
    delays = []
    for _ in range(9):
        throttle.failed("account:lea")
        delays.append(locked_for(throttle, "account:lea"))
        clock.advance(delays[-1])  # wait out the lock, then fail again
        assert locked_for(throttle, "account:lea") == 0
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30, 30]


def test_the_lock_counts_down(throttle: LoginThrottle, clock: FakeClock) -> None:
    for _ in range(6):
        throttle.failed("account:lea")  # 3 free, then 1, 2, 4: the last one sets 4 s
    assert locked_for(throttle, "account:lea") == 4
    clock.advance(2.5)
    assert locked_for(throttle, "account:lea") == 1.5
    clock.advance(1.5)
    assert locked_for(throttle, "account:lea") == 0


def test_the_message_gives_the_wait(throttle: LoginThrottle) -> None:
    for _ in range(5):
        throttle.failed("ip:10.0.0.1")
    with pytest.raises(AuthenticationThrottled, match="retry in 2 s"):
        throttle.check("ip:10.0.0.1")


def test_a_small_cap(clock: FakeClock) -> None:
    throttle = LoginThrottle(free_failures=0, max_delay=3.0, window=900.0, clock=clock)
    delays = []
    for _ in range(4):
        throttle.failed("k")
        delays.append(locked_for(throttle, "k"))
    assert delays == [1, 2, 3, 3]


def test_failures_are_forgotten_after_the_window(throttle: LoginThrottle,
                                                 clock: FakeClock) -> None:
    for _ in range(3):
        throttle.failed("account:lea")
    clock.advance(900.5)  # the window runs from the first failure
    throttle.failed("account:lea")  # a fresh count: free again
    assert locked_for(throttle, "account:lea") == 0
    throttle.failed("account:lea")
    throttle.failed("account:lea")
    assert locked_for(throttle, "account:lea") == 0
    throttle.failed("account:lea")
    assert locked_for(throttle, "account:lea") == 1


def test_failures_within_the_window_add_up(throttle: LoginThrottle, clock: FakeClock) -> None:
    for _ in range(3):
        throttle.failed("account:lea")
        clock.advance(299)  # 897 s after the first failure: still inside
    throttle.failed("account:lea")
    assert locked_for(throttle, "account:lea") == 1


def test_success_resets_only_its_own_key(throttle: LoginThrottle) -> None:
    for _ in range(5):
        throttle.failed("account:lea", "ip:10.0.0.1")
    throttle.succeeded("account:lea")
    assert locked_for(throttle, "account:lea") == 0
    assert locked_for(throttle, "ip:10.0.0.1") == 2
    throttle.failed("account:lea")  # counting starts again from zero
    assert locked_for(throttle, "account:lea") == 0


def test_keys_are_counted_separately_and_any_locked_key_refuses(
        throttle: LoginThrottle) -> None:
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"):
        throttle.failed("account:lea", f"ip:{ip}")
    # Four failures on the account from four addresses: the account is locked ...
    assert locked_for(throttle, "account:lea") == 1
    # ... no address is (one failure each) ...
    assert locked_for(throttle, "ip:10.0.0.1") == 0
    # ... and an attempt on the account from a fresh address is refused all the same.
    assert locked_for(throttle, "account:lea", "ip:10.9.9.9") == 1
    for _ in range(5):
        throttle.failed("ip:10.6.6.6")
    assert locked_for(throttle, "account:tom", "ip:10.6.6.6") == 2  # the longest lock wins
    assert locked_for(throttle, "account:tom", "ip:10.0.0.2") == 0


# --- through the Authenticator -------------------------------------------------------------

class FakeHasher:
    async def verify(self, password_hash: str | None, password: str) -> bool:
        return password_hash is not None and password_hash == f"hash:{password}"

    def needs_rehash(self, password_hash: str) -> bool:
        return False  # the rehash path is tested against the real hasher


class FakeDirectory:
    local_domains = frozenset({"schule.test"})

    def __init__(self) -> None:
        self.accounts = {
            "lea": (Account(1, "lea", "Lea", Role.PUPIL, Status.ACTIVE), "hash:richtig-geheim"),
            "tom": (Account(2, "tom", "Tom", Role.PUPIL, Status.SUSPENDED), "hash:tom-geheim"),
        }
        self.lookups = 0

    async def credentials_for(self, login: str) -> tuple[Account, str] | None:
        self.lookups += 1
        return self.accounts.get(login)


@pytest.fixture
def directory() -> FakeDirectory:
    return FakeDirectory()


@pytest.fixture
def auth(directory: FakeDirectory, throttle: LoginThrottle) -> Authenticator:
    return Authenticator(directory, FakeHasher(), throttle)  # type: ignore[arg-type]


async def test_a_locked_account_is_refused_without_checking_the_password(
        auth: Authenticator, directory: FakeDirectory, clock: FakeClock) -> None:
    for _ in range(4):
        with pytest.raises(AuthenticationFailed):
            await auth.authenticate("lea", "falsch", "10.0.0.1")
    lookups = directory.lookups
    with pytest.raises(AuthenticationThrottled) as caught:
        await auth.authenticate("lea", "richtig-geheim", "10.0.0.2")
    assert caught.value.retry_after == 1
    assert directory.lookups == lookups
    # Refused attempts do not lengthen the lock.
    for _ in range(10):
        with pytest.raises(AuthenticationThrottled):
            await auth.authenticate("lea", "falsch", "10.0.0.3")
    clock.advance(1)
    assert (await auth.authenticate("Lea@Schule.Test", "richtig-geheim", "10.0.0.2")).login == "lea"


async def test_success_clears_the_account_but_not_the_address(
        auth: Authenticator, clock: FakeClock) -> None:
    for _ in range(4):
        with pytest.raises(AuthenticationFailed):
            await auth.authenticate("lea", "falsch", "10.0.0.1")
    clock.advance(1)
    await auth.authenticate("lea", "richtig-geheim", "10.0.0.1")
    # The account starts afresh: three free failures from another address ...
    for _ in range(3):
        with pytest.raises(AuthenticationFailed):
            await auth.authenticate("lea", "falsch", "10.0.0.2")
    await auth.authenticate("lea", "richtig-geheim", "10.0.0.2")
    # ... while 10.0.0.1 keeps its count: its fifth failure locks it for 2 s.
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate("lea", "falsch", "10.0.0.1")
    with pytest.raises(AuthenticationThrottled) as caught:
        await auth.authenticate("lea", "richtig-geheim", "10.0.0.1")
    assert caught.value.retry_after == 2


async def test_unknown_suspended_and_foreign_logins_count_as_failures(
        auth: Authenticator) -> None:
    attempts = [("niemand", "x"), ("tom", "tom-geheim"), ("lea@other.example", "richtig-geheim"),
                ("lea", "falsch")]
    for login, password in attempts:
        with pytest.raises(AuthenticationFailed, match="invalid login or password"):
            await auth.authenticate(login, password, "10.0.0.7")
    with pytest.raises(AuthenticationThrottled):
        await auth.authenticate("lea", "richtig-geheim", "10.0.0.7")  # the address is locked
