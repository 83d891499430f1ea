"""The webmail listener (the conf.app Service protocol: start/stop), HTTPS only,
plus an optional plain-HTTP listener that only redirects to it.

The session cookie is Secure, so the page is only ever served over TLS, with
the school's certificate like the mail listeners.  Someone typing the bare
host name gets ``http://``: the redirect listener sends them to ``https://``
(308 keeps the method; nothing is read or answered over plain HTTP).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Sequence

from aiohttp import web

from federation.http_guard import GuardedSite, HttpLimits
from mailserver.webmail.app import Webmail, build_app
from mailserver.webmail.low_level_errors import WebmailRunner
from mailserver.webmail.security import FIXED_HEADERS

# A host name or an IP literal as it may stand in the Host header (RFC 9110 7.2).
_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]")


def https_redirect_app(https_port: int) -> web.Application:
    """Every request answered with a redirect to the same path over HTTPS."""
    async def to_https(request: web.Request) -> web.StreamResponse:
        host = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") \
            else request.host
        if not _HOST.fullmatch(host):
            return web.Response(status=400, text="Bitte die Adresse mit https:// aufrufen.\n")
        netloc = host if https_port == 443 else f"{host}:{https_port}"
        raise web.HTTPPermanentRedirect(f"https://{netloc}{request.rel_url}")

    async def plain_headers(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Server"] = FIXED_HEADERS["Server"]
        response.headers["Cache-Control"] = "no-store"

    app = web.Application()
    app.on_response_prepare.append(plain_headers)
    app.router.add_route("*", "/{tail:.*}", to_https)
    return app


class WebmailServer:
    def __init__(self, webmail: Webmail, *, bind: str, port: int,
                 ssl_context: ssl.SSLContext, http_redirect_port: int = -1,
                 public_port: int = 0, http_limits: HttpLimits | None = None,
                 extra_routes: Sequence[web.RouteDef] = ()) -> None:
        self.webmail = webmail
        self.bind = bind
        self.port = port
        self._ssl = ssl_context
        self._redirect_port = http_redirect_port
        self._public_port = public_port
        # Slow clients timed out, connections per address capped (federation.http_guard).
        self._limits = http_limits or HttpLimits(exempt=webmail.trusted_proxies)
        self._runners: list[WebmailRunner] = []
        # Routes of other areas on the same port (mail client autoconfiguration).
        self._extra_routes = tuple(extra_routes)
        self.bound_port: int | None = None
        self.redirect_port: int | None = None

    async def _serve(self, app: web.Application, port: int,
                     ssl_context: ssl.SSLContext | None) -> int:
        runner = WebmailRunner(app, access_log=None, handle_signals=False,
                               shutdown_timeout=1.0, **self._limits.runner_options())
        await runner.setup()
        self._runners.append(runner)
        await GuardedSite(runner, self.bind, port, limits=self._limits,
                          ssl_context=ssl_context).start()
        return runner.addresses[0][1] if runner.addresses else port

    async def start(self) -> list[str]:
        app = build_app(self.webmail)
        app.add_routes(self._extra_routes)
        self.bound_port = await self._serve(app, self.port, self._ssl)
        lines = [f"service=webmail addr={self.bind}:{self.bound_port} scheme=https"]
        if self._redirect_port >= 0:
            target = self._public_port or self.bound_port
            self.redirect_port = await self._serve(https_redirect_app(target),
                                                   self._redirect_port, None)
            lines.append(f"service=webmail_redirect addr={self.bind}:{self.redirect_port} "
                         f"scheme=http to_port={target}")
        return lines

    @property
    def base_url(self) -> str:
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        return f"https://{host}:{self.bound_port}"

    async def stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
