"""The ManageSieve listener (RFC 5804, port 4190; the demo uses 2419).

One asyncio server; each connection runs a ``ManageSieveSession``.  The
per-IP connection limit is the one every listener uses
(``federation.connection_limits``); over it a client gets ``BYE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from federation.connection_limits import ConnectionLimiter
from mailserver.managesieve import wire
from mailserver.managesieve.session import ManageSieveSession, SessionServices

log = logging.getLogger("schulhof.managesieve")


class ManageSieveServer:
    """A ``conf.app.Service``: start, stop."""

    def __init__(self, services: SessionServices, bind: str, port: int,
                 max_connections_per_ip: int = 50, reuse_port: bool = False) -> None:
        self.services = services
        self._reuse_port = reuse_port  # SO_REUSEPORT: several serve workers on one port
        self.bind = bind
        self.port = port
        self._limiter = ConnectionLimiter(max_connections_per_ip)
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    async def start(self) -> list[str]:
        # The reader's limit bounds a line (and readuntil's buffer) for every client.
        self._server = await asyncio.start_server(
            self._connected, self.bind, self.port,
            limit=self.services.limits.max_line_length + 2,
            reuse_port=self._reuse_port or None)
        self.port = self._server.sockets[0].getsockname()[1]
        return [f"service=managesieve addr={self.bind}:{self.port}"]

    async def _connected(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        ip = str(peer[0]) if peer else ""
        if not self._limiter.acquire(ip):
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.write(wire.response("BYE", "Too many connections from your address",
                                           code="TRYLATER"))
                await writer.drain()
                writer.close()
            return
        log.info("event=managesieve_connected ip=%s", ip)
        task = asyncio.current_task()
        if task is not None:
            self._sessions.add(task)
        try:
            await ManageSieveSession(self.services, reader, writer, ip).run()
        except asyncio.CancelledError:
            # stop(): end quietly (asyncio's stream callback logs a cancelled task).
            writer.close()
        except Exception:
            log.exception("event=managesieve_session_failed ip=%s", ip)
        finally:
            self._limiter.release(ip)
            if task is not None:
                self._sessions.discard(task)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._sessions):
                task.cancel()
            await asyncio.gather(*self._sessions, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
