"""The Matrix client API server of one school: a ``Service`` for ``conf``.

Built from plain arguments (database, directory, authenticator, server name,
limits); every object it needs is made here, per instance, so two schools in
one process have separate notifiers, sessions and locks.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from aiohttp import web

from messenger.api.app import build_app
from messenger.api.http import ApiContext
from messenger.limits import MessengerLimits
from messenger.rooms.policy import ChatPolicy
from messenger.rooms.service import RoomService
from messenger.sessions import PasswordChecker, Sessions
from messenger.sync.builder import SyncBuilder
from messenger.sync.notifier import Notifier

log = logging.getLogger("schulhof.messenger")


class MatrixServer:
    def __init__(self, *, db: Any, directory: Any, authenticator: PasswordChecker,
                 server_name: str, bind: str, port: int,
                 limits: MessengerLimits | None = None, mail_domain: str | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.server_name = server_name
        self.bind = bind
        self.port = port
        self.limits = limits or MessengerLimits()
        self.notifier = Notifier()
        policy = ChatPolicy(directory, server_name, mail_domain or server_name)
        self.rooms = RoomService(db, server_name, self.notifier, policy)
        self.sessions = Sessions(db, authenticator, server_name, mail_domain or server_name)
        self.sync = SyncBuilder(db, self.notifier, self.limits)
        self.context = ApiContext(server_name=server_name, sessions=self.sessions,
                                  rooms=self.rooms, sync=self.sync, limits=self.limits, db=db,
                                  directory=directory)
        self._ssl = ssl_context
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    def app(self) -> web.Application:
        return build_app(self.context)

    async def start(self) -> list[str]:
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False,
                               shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.bind, self.port, ssl_context=self._ssl)
        await site.start()
        self._runner = runner
        # With port 0 the OS picked one: report the real one.
        self.bound_port = runner.addresses[0][1] if runner.addresses else self.port
        scheme = "https" if self._ssl else "http"
        return [f"service=matrix addr={self.bind}:{self.bound_port} scheme={scheme} "
                f"server_name={self.server_name}"]

    @property
    def base_url(self) -> str:
        scheme = "https" if self._ssl else "http"
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        return f"{scheme}://{host}:{self.bound_port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
