"""LoginThrottle (and the Authenticator's use of it) on a fake clock."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from directory.auth import (
    AuthenticationFailed,
    AuthenticationThrottled,
    Authenticator,
    LoginThrottle,
)
from directory.model import Account, Role, Status
from directory.verified_logins import VerifiedLogins
from tests.support.properties import examples


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


def locked_for(throttle: LoginThrottle, account: str, ip: str) -> float:
    """How long ``account`` is locked from ``ip`` now (0 when an attempt may go ahead)."""
    try:
        throttle.check(account, ip)
    except AuthenticationThrottled as exc:
        assert exc.retry_after > 0
        return exc.retry_after
    return 0.0


NAT = "192.0.2.1"


def test_the_first_failures_are_free(throttle: LoginThrottle) -> None:
    for _ in range(3):
        assert locked_for(throttle, "lea", NAT) == 0
        throttle.failed("lea", NAT)
    assert locked_for(throttle, "lea", NAT) == 0


def test_each_further_failure_locks_the_pair_for_a_doubling_delay_up_to_the_cap(
        throttle: LoginThrottle, clock: FakeClock) -> None:
    for _ in range(3):
        throttle.failed("lea", NAT)
    delays = []
    for _ in range(9):
        throttle.failed("lea", NAT)
        delays.append(locked_for(throttle, "lea", NAT))
        clock.advance(delays[-1])  # wait out the lock, then fail again
        assert locked_for(throttle, "lea", NAT) == 0
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30, 30]


def test_a_locked_pair_locks_nobody_else(throttle: LoginThrottle) -> None:
    for _ in range(8):
        throttle.failed("lea", NAT)
    assert locked_for(throttle, "lea", NAT) == 16
    assert locked_for(throttle, "lea", "198.51.100.7") == 0  # the same account elsewhere
    assert locked_for(throttle, "tom", NAT) == 0  # another pupil behind the same NAT


def test_the_message_gives_the_wait(throttle: LoginThrottle) -> None:
    for _ in range(5):
        throttle.failed("lea", NAT)
    with pytest.raises(AuthenticationThrottled, match="retry in 2 s"):
        throttle.check("lea", NAT)


def test_the_window_counts_from_the_last_failure(throttle: LoginThrottle,
                                                 clock: FakeClock) -> None:
    """Issue 19.7: one guess every few minutes must keep the count alive."""
    for _ in range(4):
        throttle.failed("lea", NAT)
        clock.advance(600)  # 1800 s after the first failure, 600 s after the last
    assert throttle.retry_after("lea", NAT) == 0
    throttle.failed("lea", NAT)  # the 5th within 900 s of the 4th: 2 s
    assert locked_for(throttle, "lea", NAT) == 2
    clock.advance(900.5)  # quiet for a whole window: forgotten
    throttle.failed("lea", NAT)
    assert locked_for(throttle, "lea", NAT) == 0


def test_the_account_lock_needs_many_failures_and_lasts_at_most_a_minute(
        clock: FakeClock) -> None:
    throttle = LoginThrottle(free_failures=3, max_delay=30.0, window=900.0,
                             account_free_failures=20, account_max_delay=3600.0, clock=clock)
    for n in range(20):  # 20 attackers, one guess each
        throttle.failed("lehrerin", f"203.0.113.{n}")
    assert locked_for(throttle, "lehrerin", "198.51.100.1") == 0
    for n in range(20, 40):
        throttle.failed("lehrerin", f"203.0.113.{n}")
    assert locked_for(throttle, "lehrerin", "198.51.100.1") == 60  # capped at a minute
    clock.advance(60)
    assert locked_for(throttle, "lehrerin", "198.51.100.1") == 0


def test_a_known_address_is_not_locked_by_others(clock: FakeClock) -> None:
    throttle = LoginThrottle(free_failures=3, max_delay=30.0, window=900.0,
                             account_free_failures=5, ip_failing_accounts=5, clock=clock)
    throttle.succeeded("lehrerin", "198.51.100.1")  # her usual place
    for n in range(30):
        throttle.failed("lehrerin", f"203.0.113.{n}")
    for n in range(30):
        throttle.failed(f"pupil{n}", "198.51.100.1")  # a spray from her own NAT
    assert locked_for(throttle, "lehrerin", "198.51.100.1") == 0
    assert locked_for(throttle, "lehrerin", "198.51.100.2") > 0  # a new place waits
    assert locked_for(throttle, "someone", "198.51.100.1") > 0  # the spraying address


def test_the_address_lock_counts_distinct_accounts(clock: FakeClock) -> None:
    throttle = LoginThrottle(free_failures=3, max_delay=30.0, window=900.0,
                             ip_failing_accounts=10, clock=clock)
    for _ in range(3):
        for n in range(10):  # ten pupils mistype three times each: no lock
            throttle.failed(f"pupil{n}", NAT)
    assert locked_for(throttle, "pupil99", NAT) == 0
    throttle.failed("pupil10", NAT)  # the 11th distinct account
    assert locked_for(throttle, "pupil99", NAT) == 1
    throttle.succeeded("pupil10", NAT)  # a pupil who then typed it right is not failing
    assert locked_for(throttle, "pupil99", NAT) == 0


# --- the model: the same rules, computed from the whole history every time ----------------

@dataclass
class Model:
    """What LoginThrottle must answer, from a plain list of what happened."""

    free: int
    cap: float
    window: float
    account_free: int
    account_cap: float
    ip_accounts: int
    history: list[tuple[float, str, str, bool]] = dc_field(default_factory=list)

    def _chain(self, events: list[tuple[float, str, str, bool]]) -> list[
            tuple[float, str, str, bool]]:
        """The trailing failures no more than ``window`` apart (the live count)."""
        chain: list[tuple[float, str, str, bool]] = []
        for event in events:
            if chain and event[0] - chain[-1][0] > self.window:
                chain = []
            chain.append(event)
        return chain

    @staticmethod
    def _delay(excess: int, cap: float) -> float:
        return 0.0 if excess <= 0 else min(cap, 2.0 ** (excess - 1))

    def retry_after(self, account: str, ip: str, now: float) -> float:
        waits = [0.0]
        pair = [e for e in self.history if e[1] == account and e[2] == ip]
        successes = [i for i, e in enumerate(pair) if e[3]]
        since = pair[successes[-1] + 1:] if successes else pair
        chain = self._chain(since)
        if chain:
            waits.append(chain[-1][0] + self._delay(len(chain) - self.free, self.cap) - now)
        if any(e[3] for e in pair):  # known: only its own count applies
            return max(waits)
        chain = self._chain([e for e in self.history if e[1] == account and not e[3]])
        if chain:
            waits.append(chain[-1][0] + self._delay(len(chain) - self.account_free,
                                                    min(self.account_cap, 60.0)) - now)
        chain = self._chain([e for e in self.history if e[2] == ip and not e[3]])
        if chain:
            start = chain[0][0]
            failing = set()
            for t, a, i, ok in self.history:
                if i == ip and t >= start:
                    (failing.discard if ok else failing.add)(a)
            waits.append(chain[-1][0] + self._delay(len(failing) - self.ip_accounts,
                                                    self.cap) - now)
        return max(waits)


_accounts = st.sampled_from(["lea", "tom", "ida", "lehrerin"])
_ips = st.sampled_from(["10.0.0.1", "10.0.0.2", "192.0.2.9"])
_steps = st.lists(st.one_of(
    st.tuples(st.just("attempt"), _accounts, _ips, st.booleans()),
    st.tuples(st.just("wait"), st.sampled_from([0.5, 1, 3, 20, 61, 450, 899, 901])),
), max_size=60)


@given(steps=_steps, free=st.integers(0, 4), account_free=st.integers(0, 12),
       ip_accounts=st.integers(1, 4), account_cap=st.sampled_from([2.0, 30.0, 600.0]))
@settings(max_examples=examples(600), deadline=None)
def test_the_throttle_answers_as_the_model(steps: list[tuple], free: int, account_free: int,
                                           ip_accounts: int, account_cap: float) -> None:
    clock = FakeClock()
    throttle = LoginThrottle(free_failures=free, max_delay=30.0, window=900.0,
                             account_free_failures=account_free,
                             account_max_delay=account_cap, ip_failing_accounts=ip_accounts,
                             clock=clock)
    model = Model(free, 30.0, 900.0, account_free, account_cap, ip_accounts)
    for step in steps:
        if step[0] == "wait":
            clock.advance(step[1])
            continue
        _, account, ip, right = step
        expected = model.retry_after(account, ip, clock.now)
        assert throttle.retry_after(account, ip) == pytest.approx(max(expected, 0.0))
        if expected > 0:
            continue  # refused without a password check: nothing happens
        model.history.append((clock.now, account, ip, right))
        if right:
            throttle.succeeded(account, ip)
        else:
            throttle.failed(account, ip)
        assert throttle.retry_after(account, ip) <= 30.0 or not right


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


async def test_a_locked_pair_is_refused_without_checking_the_password(
        auth: Authenticator, directory: FakeDirectory, clock: FakeClock) -> None:
    for _ in range(4):
        with pytest.raises(AuthenticationFailed):
            await auth.authenticate("lea", "falsch", "10.0.0.1")
    lookups = directory.lookups
    with pytest.raises(AuthenticationThrottled) as caught:
        await auth.authenticate("lea", "richtig-geheim", "10.0.0.1")
    assert caught.value.retry_after == 1
    assert directory.lookups == lookups
    # Refused attempts do not lengthen the lock ...
    for _ in range(10):
        with pytest.raises(AuthenticationThrottled):
            await auth.authenticate("lea", "falsch", "10.0.0.1")
    # ... and Lea herself, somewhere else, is not locked at all.
    assert (await auth.authenticate("Lea@Schule.Test", "richtig-geheim", "10.0.0.2")).login == "lea"
    clock.advance(1)
    assert (await auth.authenticate("lea", "richtig-geheim", "10.0.0.1")).login == "lea"


async def test_success_ends_the_pairs_count(auth: Authenticator, clock: FakeClock) -> None:
    for _ in range(4):
        with pytest.raises(AuthenticationFailed):
            await auth.authenticate("lea", "falsch", "10.0.0.1")
    clock.advance(1)
    await auth.authenticate("lea", "richtig-geheim", "10.0.0.1")
    for _ in range(3):  # three free failures again
        with pytest.raises(AuthenticationFailed):
            await auth.authenticate("lea", "falsch", "10.0.0.1")
    await auth.authenticate("lea", "richtig-geheim", "10.0.0.1")


async def test_unknown_suspended_and_foreign_logins_count_as_failures(
        directory: FakeDirectory, clock: FakeClock) -> None:
    throttle = LoginThrottle(free_failures=3, ip_failing_accounts=3, clock=clock)
    auth = Authenticator(directory, FakeHasher(), throttle)  # type: ignore[arg-type]
    attempts = [("niemand", "x"), ("tom", "tom-geheim"), ("lea@other.example", "richtig-geheim"),
                ("lea", "falsch")]
    for login, password in attempts:
        with pytest.raises(AuthenticationFailed, match="invalid login or password"):
            await auth.authenticate(login, password, "10.0.0.7")
    # Four distinct failing accounts from one address, over its limit of three:
    with pytest.raises(AuthenticationThrottled):
        await auth.authenticate("ida", "richtig-geheim", "10.0.0.7")
    assert (await auth.authenticate("lea", "richtig-geheim", "10.0.0.8")).login == "lea"


# --- verified logins (directory.verified_logins) ---------------------------------------------

class CountingHasher(FakeHasher):
    def __init__(self) -> None:
        self.verifications = 0

    async def verify(self, password_hash: str | None, password: str) -> bool:
        self.verifications += 1
        return await super().verify(password_hash, password)


@pytest.fixture
def hasher() -> CountingHasher:
    return CountingHasher()


@pytest.fixture
def cached(directory: FakeDirectory, hasher: CountingHasher, throttle: LoginThrottle,
           clock: FakeClock) -> Authenticator:
    return Authenticator(directory, hasher, throttle,  # type: ignore[arg-type]
                         VerifiedLogins(ttl=600.0, clock=clock))


async def test_a_repeated_login_skips_the_verification_until_the_ttl_ends(
        cached: Authenticator, hasher: CountingHasher, clock: FakeClock) -> None:
    for _ in range(3):
        assert (await cached.authenticate("Lea@schule.test", "richtig-geheim", NAT)).login == "lea"
    assert hasher.verifications == 1
    clock.advance(599)  # a hit does not extend the entry
    await cached.authenticate("lea", "richtig-geheim", NAT)
    assert hasher.verifications == 1
    clock.advance(1)
    await cached.authenticate("lea", "richtig-geheim", NAT)
    assert hasher.verifications == 2


async def test_a_wrong_password_is_never_taken_from_the_cache_and_is_throttled(
        cached: Authenticator, hasher: CountingHasher) -> None:
    await cached.authenticate("lea", "richtig-geheim", NAT)
    for wrong in ("falsch", "richtig-geheim ", "Richtig-geheim", ""):
        with pytest.raises(AuthenticationFailed):
            await cached.authenticate("lea", wrong, NAT)
    assert hasher.verifications == 5  # every failure paid the full verification
    # Four failures: the pair is locked, the right (cached) password included.
    with pytest.raises(AuthenticationThrottled):
        await cached.authenticate("lea", "richtig-geheim", NAT)


async def test_a_changed_hash_or_a_suspension_ends_the_cached_login_at_once(
        cached: Authenticator, directory: FakeDirectory, hasher: CountingHasher) -> None:
    await cached.authenticate("lea", "richtig-geheim", NAT)
    lea, _ = directory.accounts["lea"]
    directory.accounts["lea"] = (lea, "hash:neu-geheim")  # a new password, set elsewhere
    with pytest.raises(AuthenticationFailed):
        await cached.authenticate("lea", "richtig-geheim", NAT)
    await cached.authenticate("lea", "neu-geheim", NAT)
    directory.accounts["lea"] = (Account(1, "lea", "Lea", Role.PUPIL, Status.SUSPENDED),
                                 "hash:neu-geheim")
    with pytest.raises(AuthenticationFailed):
        await cached.authenticate("lea", "neu-geheim", NAT)
    del directory.accounts["lea"]  # erased
    with pytest.raises(AuthenticationFailed):
        await cached.authenticate("lea", "neu-geheim", "10.9.9.9")


def test_verified_logins_stay_within_their_bound(clock: FakeClock) -> None:
    verified = VerifiedLogins(ttl=10.0, max_entries=3, clock=clock)
    for n in range(5):
        verified.remember(f"u{n}", "hash", "pw")
    assert len(verified) == 3 and not verified.verified("u0", "hash", "pw")
    assert verified.verified("u4", "hash", "pw")
    clock.advance(10)
    verified.remember("u5", "hash", "pw")  # drops the expired ones on the way
    assert len(verified) == 1
    # Fields cannot run into each other: ("a", "bc") is not ("ab", "c").
    verified.remember("a", "bc", "pw")
    assert not verified.verified("ab", "c", "pw")
    assert not VerifiedLogins(ttl=0.0).verified("u5", "hash", "pw")
