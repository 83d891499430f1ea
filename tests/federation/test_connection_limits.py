"""federation.connection_limits.ConnectionLimiter: the per-IP count both the
SMTP and the IMAP listeners use."""

from __future__ import annotations

from federation.connection_limits import ConnectionLimiter


def test_refuses_beyond_the_limit_per_ip_only() -> None:
    limiter = ConnectionLimiter(2)
    assert limiter.acquire("192.0.2.1")
    assert limiter.acquire("192.0.2.1")
    assert not limiter.acquire("192.0.2.1")
    assert limiter.open_connections("192.0.2.1") == 2  # the refusal was not counted
    assert limiter.acquire("2001:db8::1")  # another address has its own count
    assert limiter.open_connections("2001:db8::1") == 1


def test_release_frees_one_slot() -> None:
    limiter = ConnectionLimiter(2)
    limiter.acquire("192.0.2.1")
    limiter.acquire("192.0.2.1")
    limiter.release("192.0.2.1")
    assert limiter.open_connections("192.0.2.1") == 1
    assert limiter.acquire("192.0.2.1")
    assert not limiter.acquire("192.0.2.1")


def test_released_addresses_are_forgotten() -> None:
    limiter = ConnectionLimiter(3)
    limiter.acquire("192.0.2.1")
    limiter.release("192.0.2.1")
    assert limiter.open_connections("192.0.2.1") == 0
    assert limiter._open == {}  # no entry left behind per address ever seen
    limiter.release("192.0.2.1")  # an extra release never goes below zero
    assert limiter.open_connections("192.0.2.1") == 0


def test_zero_means_unlimited_but_still_counts() -> None:
    limiter = ConnectionLimiter(0)
    assert all(limiter.acquire("192.0.2.1") for _ in range(5000))
    assert limiter.open_connections("192.0.2.1") == 5000


def test_exempt_addresses_are_counted_but_never_refused() -> None:
    """A trusted reverse proxy carries many clients: the HTTP listeners exempt it."""
    limiter = ConnectionLimiter(1, exempt=lambda ip: ip == "10.0.0.1")
    assert limiter.acquire("10.0.0.1") and limiter.acquire("10.0.0.1")
    assert limiter.open_connections("10.0.0.1") == 2
    assert limiter.acquire("10.0.0.2") and not limiter.acquire("10.0.0.2")
