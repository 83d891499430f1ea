"""The SMTP service: MX (25), submission (587) and submissions (465) listeners.

RFC 5321 (MX, opportunistic STARTTLS of RFC 3207), RFC 6409 (submission:
STARTTLS required before anything but EHLO/NOOP/QUIT, AUTH required before
MAIL), RFC 8314 3.3 (submissions: TLS from the first byte).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

from directory.auth import Authenticator
from directory.service import Directory
from federation.connection_limits import ConnectionLimiter
from federation.tls import server_tls_context
from mailserver.delivery import DeliveryTarget
from mailserver.group_mail import GroupMailSink
from mailserver.smtp.command_table import CommandTables
from mailserver.smtp.config import ListenerKind, SmtpConfig
from mailserver.smtp.inbound_auth import InboundCheck
from mailserver.smtp.protocol import SchulhofSMTP
from mailserver.smtp.routing import Router
from mailserver.smtp.session import SessionServices, SmtpSession
from mailserver.smtp.spam import SpamFilter

log = logging.getLogger("schulhof.smtp")

IDENT = "Schulhof ESMTP"


class SmtpService:
    """The school's SMTP listeners (the conf.app Service protocol: start/stop)."""

    def __init__(self, config: SmtpConfig, directory: Directory,
                 authenticator: Authenticator, target: DeliveryTarget,
                 inbound_check: InboundCheck | None = None,
                 observe: Callable[[str, str, str], None] | None = None,
                 spam_filter: SpamFilter | None = None,
                 tls_context: Callable[[], ssl.SSLContext] | None = None,
                 group_mail: GroupMailSink | None = None) -> None:
        self.config = config
        # The school's shared, reloadable context (SIGHUP); else one from the files.
        self._tls_context = tls_context
        self._router = Router(directory, config.local_domains,
                              cache_seconds=config.directory_cache_seconds)
        self._services = SessionServices(config, self._router, authenticator, target,
                                         inbound_check=inbound_check, observe=observe,
                                         spam_filter=spam_filter, group_mail=group_mail)
        self._limiter = ConnectionLimiter(config.limits.max_connections_per_ip)
        self._tables = CommandTables()
        self._servers: list[asyncio.Server] = []
        self._connections: set[SchulhofSMTP] = set()
        self._cleanups: set[asyncio.Task[Any]] = set()
        self.addresses: dict[ListenerKind, tuple[str, int]] = {}

    async def start(self) -> list[str]:
        check = self._services.inbound_check
        if check is not None and self.config.port(ListenerKind.MX) >= 0:
            await check.prepare()
        if self._tls_context is not None:
            tls = await asyncio.to_thread(self._tls_context)
        else:
            tls = await asyncio.to_thread(server_tls_context, str(self.config.certificate),
                                          str(self.config.key))
        loop = asyncio.get_running_loop()
        described = []
        for kind in ListenerKind:
            port = self.config.port(kind)
            if port < 0:
                continue
            server = await loop.create_server(
                lambda kind=kind: self._connection(kind, tls), self.config.bind, port,
                ssl=tls if kind.implicit_tls else None, reuse_address=True,
                reuse_port=self.config.reuse_port or None)
            self._servers.append(server)
            host, real_port = server.sockets[0].getsockname()[:2]
            self.addresses[kind] = (host, real_port)
            shown = f"[{host}]" if ":" in host else host
            described.append(f"service={kind.service_name} addr={shown}:{real_port}")
        return described

    def _connection(self, kind: ListenerKind, tls: ssl.SSLContext) -> SchulhofSMTP:
        options: dict[str, Any] = {}
        if kind is ListenerKind.MX:
            options = {"tls_context": tls, "auth_exclude_mechanism": ("PLAIN", "LOGIN")}
        elif kind is ListenerKind.SUBMISSION:
            # RFC 8314 / 6409: nothing but EHLO/NOOP/QUIT/STARTTLS in the clear.
            options = {"tls_context": tls, "require_starttls": True, "auth_required": True}
        else:
            # Already TLS from the first byte: aiosmtpd must not ask for STARTTLS.
            options = {"auth_required": True, "implicit_tls": True}
        return self._protocol(kind, options)

    def _protocol(self, kind: ListenerKind, options: dict[str, Any]) -> SchulhofSMTP:
        limits = self.config.limits
        return SchulhofSMTP(
            SmtpSession(self._services, kind), limits=limits, limiter=self._limiter,
            tables=self._tables,
            on_opened=self._connections.add, on_closed=self._closed,
            hostname=self.config.hostname, ident=IDENT,
            data_size_limit=limits.max_message_size, enable_SMTPUTF8=True,
            timeout=limits.idle_timeout_seconds, **options)

    def _closed(self, protocol: SchulhofSMTP) -> None:
        self._connections.discard(protocol)
        task = asyncio.get_running_loop().create_task(
            protocol.session_handler.connection_closed())
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def settled(self, timeout: float = 10.0) -> None:
        """Wait (bounded) until the commits and group-mail sinks now in flight are done:
        what ran after a 250 (the room bridge) has run."""
        deadline = time.monotonic() + timeout
        while self._services.committing and time.monotonic() < deadline:
            await asyncio.wait(set(self._services.committing),
                               timeout=max(0.0, deadline - time.monotonic()))

    def forget_directory_answers(self) -> None:
        """The directory changed: the next RCPT asks it again (conf subscribes this)."""
        self._router.forget()

    async def stop(self) -> None:
        """Stop accepting; let running commits finish (bounded), then close every connection.

        Transactions that are not committing are aborted by the sessions when
        their connection closes, so nothing half-received is stored.
        """
        for server in self._servers:
            server.close()
        deadline = time.monotonic() + self.config.stop_grace_seconds
        while self._services.committing and time.monotonic() < deadline:
            await asyncio.wait(set(self._services.committing),
                               timeout=max(0.0, deadline - time.monotonic()))
        for protocol in list(self._connections):
            protocol.close_now()
        for server in self._servers:
            await server.wait_closed()
        self._servers = []
        # connection_lost runs on the next loop iterations; wait for the aborts it starts.
        for _ in range(100):
            if not self._connections and not self._cleanups:
                break
            await asyncio.sleep(0.01)
        if self._cleanups:
            await asyncio.wait(set(self._cleanups), timeout=self.config.stop_grace_seconds)
