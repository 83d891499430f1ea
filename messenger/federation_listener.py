"""The school's Server-Server API listener (``listen.federation``, 8448 by
default): TLS with the school's certificate, serving its signing keys and the
federation endpoints to partner servers.  A ``Service`` for ``conf``."""

from __future__ import annotations

import ssl

from aiohttp import web

from federation.http_guard import GuardedSite, HttpLimits
from federation.matrix.client import FederationClient
from federation.matrix.sender import TransactionSender
from messenger.api.federation import FederationContext, build_federation_app
from messenger.api.low_level_errors import MatrixRunner

SHUTDOWN_TIMEOUT_SECONDS = 5.0


class FederationListener:
    def __init__(self, context: FederationContext, client: FederationClient,
                 sender: TransactionSender, *, bind: str, port: int,
                 ssl_context: ssl.SSLContext, http_limits: HttpLimits | None = None) -> None:
        self.context = context
        self.client = client
        # Sends the outbox to other servers; runs while the listener does.
        self.sender = sender
        self.bind = bind
        self.port = port
        self._ssl = ssl_context
        self._http_limits = http_limits or HttpLimits()  # slow clients time out
        self._runner: web.AppRunner | None = None

    async def start(self) -> list[str]:
        runner = MatrixRunner(build_federation_app(self.context), access_log=None,
                               handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
                               **self._http_limits.runner_options())
        await runner.setup()
        site = GuardedSite(runner, self.bind, self.port, limits=self._http_limits,
                           ssl_context=self._ssl)
        await site.start()
        self._runner = runner
        self.sender.start()
        return [f"service=matrix-federation addr={self.bind}:{self.port} tls=yes "
                f"server_name={self.context.server_name}"]

    async def stop(self) -> None:
        await self.sender.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.client.close()
