"""Open connections per client IP, for every listener (SMTP, IMAP, HTTP).

A server refuses a connection at connect time when its client IP already
holds ``per_ip`` open ones (SMTP: 421 4.7.0, RFC 5321 3.8; IMAP: BYE,
RFC 9051 7.1.5; HTTP: 503), so one client cannot use up the sockets and
memory of a small school server.  One limiter per service: its listeners
share it.  Here, below mailserver and messenger, so both use the one count.
"""

from __future__ import annotations

from collections.abc import Callable


class ConnectionLimiter:
    """Counts open connections per client IP across all listeners of one service.

    ``per_ip`` of 0 (or less) means unlimited; counting still happens.  Every
    successful ``acquire`` must be matched by exactly one ``release``.
    """

    def __init__(self, per_ip: int, exempt: Callable[[str], bool] | None = None) -> None:
        self.per_ip = per_ip
        # Addresses never limited (a reverse proxy carries many clients).
        self._exempt = exempt
        self._open: dict[str, int] = {}

    def acquire(self, ip: str) -> bool:
        count = self._open.get(ip, 0)
        if (self.per_ip > 0 and count >= self.per_ip
                and not (self._exempt is not None and self._exempt(ip))):
            return False
        self._open[ip] = count + 1
        return True

    def release(self, ip: str) -> None:
        count = self._open.get(ip, 0) - 1
        if count > 0:
            self._open[ip] = count
        else:
            self._open.pop(ip, None)

    def open_connections(self, ip: str) -> int:
        return self._open.get(ip, 0)
