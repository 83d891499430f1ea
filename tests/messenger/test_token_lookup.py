"""An access token not in the sessions' cache (a few times a minute per device, and
on every request after a restart) is looked up without leaving the event loop's
thread on SQLite: the lookup completes without suspending the request."""

from __future__ import annotations

import pytest

from conf.app import School
from directory.model import Role
from messenger.limits import MessengerLimits
from messenger.server import MatrixServer
from messenger.sessions import UnknownToken

PASSWORD = "correct horse battery"


async def test_an_uncached_token_is_resolved_without_suspending(school: School) -> None:
    server = MatrixServer(db=school.db, directory=school.directory,
                          authenticator=school.authenticator, server_name="schule.test",
                          bind="127.0.0.1", port=0, limits=MessengerLimits(),
                          group_sync_interval=None)
    await school.directory.create_account(role=Role.PUPIL, login="anna", password=PASSWORD)
    login = await server.sessions.login("anna", PASSWORD, device_id=None, display_name=None,
                                        client_ip="127.0.0.1")
    server.sessions.forget_account((await server.sessions.requester(
        login.access_token)).account_id)
    if not school.db.reads_inline:  # PostgreSQL: a round trip to the server, as before
        who = await server.sessions.requester(login.access_token)
    else:
        lookup = server.sessions.requester(login.access_token)
        try:
            lookup.send(None)
        except StopIteration as done:
            who = done.value
        else:
            lookup.close()
            pytest.fail("the token lookup waited for another thread")
    assert (who.user_id, who.device_id) == ("@anna:schule.test", login.device_id)
    with pytest.raises(UnknownToken):
        await server.sessions.requester("shm_unknown")
