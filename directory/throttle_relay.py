"""Login throttling counted across a school's processes (issue 15).

A guesser spreading attempts over several ``serve`` workers must meet the same
counts as against one.  Every failure and success recorded by this process's
``LoginThrottle`` goes over the school's ``Broadcast`` and is recorded by the
others as if it had happened there.  Best effort: a notification lost while a
worker reconnects costs that worker one count (the delays are a brake, not a
record), never a login.
"""

from __future__ import annotations

import json

from directory.auth import LoginThrottle
from directory.broadcast import Broadcast

CHANNEL = "schulhof_logins"


def encode(account: str, ip: str, failed: bool) -> str:
    return json.dumps([account, ip, failed], separators=(",", ":"))


def decode(payload: str) -> tuple[str, str, bool]:
    """Raises ValueError (json's included) on anything but ``[account, ip, failed]``."""
    try:
        account, ip, failed = json.loads(payload)
    except TypeError as exc:  # a number, null, ...: nothing to unpack
        raise ValueError("not a login outcome") from exc
    if not isinstance(account, str) or not isinstance(ip, str) or not isinstance(failed, bool):
        raise ValueError("not a login outcome")
    return account, ip, failed


class ThrottleRelay:
    """Connects one ``LoginThrottle`` to a ``Broadcast`` (both directions)."""

    def __init__(self, throttle: LoginThrottle, broadcast: Broadcast) -> None:
        self._throttle = throttle
        self._broadcast = broadcast
        throttle.relay = self._send
        broadcast.listen(CHANNEL, self._receive)

    def _send(self, account: str, ip: str, failed: bool) -> None:
        payload = encode(account[:500], ip[:100], failed)  # a login is short; stay in bounds
        self._broadcast.send(CHANNEL, payload)

    def _receive(self, payload: str) -> None:
        account, ip, failed = decode(payload)
        self._throttle.record(account, ip, failed=failed)
