"""A Matrix server object on a test school's database, not listening, and logged-in
requesters for it: what the messenger's domain tests (rooms, sync cache, unread
counts, to-device streams) drive without HTTP."""

from __future__ import annotations

from conf.app import School
from directory.model import Role
from messenger.identity import Requester
from messenger.limits import MessengerLimits
from messenger.server import MatrixServer

PASSWORD = "correct horse battery"
SERVER_NAME = "schule.test"


def matrix_server(school: School) -> MatrixServer:
    """The school's Matrix server, built but never started (no port, no group sync)."""
    return MatrixServer(db=school.db, directory=school.directory,
                        authenticator=school.authenticator, server_name=SERVER_NAME,
                        bind="127.0.0.1", port=0, limits=MessengerLimits(),
                        group_sync_interval=None)


async def new_requester(school: School, server: MatrixServer, login: str, *,
                        role: Role = Role.TEACHER, display_name: str | None = None
                        ) -> Requester:
    """A new account ``login`` and the requester of its first device."""
    await school.directory.create_account(role=role, login=login, password=PASSWORD,
                                          display_name=display_name)
    return await another_device(server, login)


async def another_device(server: MatrixServer, login: str) -> Requester:
    """A further device of an existing account, logged in with PASSWORD."""
    result = await server.sessions.login(login, PASSWORD, device_id=None, display_name=None,
                                         client_ip="127.0.0.1")
    return await server.sessions.requester(result.access_token)
