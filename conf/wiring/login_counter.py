"""The throttled authenticator of every protocol, counting its refusals in the
school's metrics (``schulhof_login_failures``).  Apart from ``conf.wiring.metrics``
so that opening a school for a command (``schulhof export``) loads no metrics code."""

from __future__ import annotations

from typing import TYPE_CHECKING

from directory.auth import AuthenticationFailed, AuthenticationThrottled, Authenticator
from directory.model import Account

if TYPE_CHECKING:
    from federation.metrics import SchoolMetrics


class CountingAuthenticator(Authenticator):
    """Counts throttled and invalid logins once the school's metrics exist."""

    metrics: SchoolMetrics | None = None

    async def authenticate(self, login: str, password: str, client_ip: str = "") -> Account:
        try:
            return await super().authenticate(login, password, client_ip)
        except AuthenticationThrottled:
            if self.metrics is not None:
                self.metrics.login_failures.labels("throttled").inc()
            raise
        except AuthenticationFailed:
            if self.metrics is not None:
                self.metrics.login_failures.labels("invalid").inc()
            raise
