"""A loopback HTTPS server for MTA-STS policy files (aiohttp web), tests only.

``routes`` maps a path to a handler result: (status, content type, body,
extra headers).  Every request is counted in ``requests``.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

from aiohttp import web

from federation.mta_sts import WELL_KNOWN


@dataclass
class PolicyReply:
    body: bytes
    status: int = 200
    content_type: str = "text/plain"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class PolicyServer:
    def __init__(self, tls: ssl.SSLContext, host: str = "127.0.0.1") -> None:
        self.tls = tls
        self.host = host
        self.port = 0
        self.reply = PolicyReply(b"")
        self.requests: list[str] = []
        self._runner: web.AppRunner | None = None

    def serve(self, policy: str | bytes, **kwargs: object) -> None:
        body = policy.encode() if isinstance(policy, str) else policy
        self.reply = PolicyReply(body, **kwargs)  # type: ignore[arg-type]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(f"{request.host}{request.path}")
        if request.path != WELL_KNOWN:
            return web.Response(status=404)
        reply = self.reply
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return web.Response(body=reply.body, status=reply.status, headers=reply.headers,
                            content_type=reply.content_type)

    async def start(self) -> PolicyServer:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0, ssl_context=self.tls)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
