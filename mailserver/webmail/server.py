"""The webmail listener (the conf.app Service protocol: start/stop), HTTPS only.

The session cookie is Secure, so the page is only ever served over TLS, with
the school's certificate like the mail listeners.
"""

from __future__ import annotations

import ssl

from aiohttp import web

from mailserver.webmail.app import Webmail, build_app


class WebmailServer:
    def __init__(self, webmail: Webmail, *, bind: str, port: int,
                 ssl_context: ssl.SSLContext) -> None:
        self.webmail = webmail
        self.bind = bind
        self.port = port
        self._ssl = ssl_context
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    async def start(self) -> list[str]:
        runner = web.AppRunner(build_app(self.webmail), access_log=None, handle_signals=False,
                               shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, self.bind, self.port, ssl_context=self._ssl).start()
        self._runner = runner
        self.bound_port = runner.addresses[0][1] if runner.addresses else self.port
        return [f"service=webmail addr={self.bind}:{self.bound_port} scheme=https"]

    @property
    def base_url(self) -> str:
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        return f"https://{host}:{self.bound_port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
