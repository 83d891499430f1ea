"""One running school shared by the tests of a module, each test with its own accounts.

Starting a school costs 1-5 s (more on a loaded machine), more than most of the
API tests that need one; a module's tests can share one (module-scoped, in the
module's event loop: ``pytestmark = pytest.mark.asyncio(loop_scope="module")``,
and the module listed in tests/support/xdist_groups.py so that its tests stay on
one xdist worker).  The tests stay independent because each makes its own
accounts: a test says ``lehrer``, and the server knows it as ``lehrer7`` (the
seventh test here), so no test sees another's rooms, invites, pushers or
messages, and their order does not matter.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Iterable

from conf.app import School
from conf.settings import Settings
from directory.model import Role

PASSWORD = "correct horse battery"


class OwnAccounts:
    """The running test's accounts: the name a test uses -> the account on the server."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}
        self._tests = itertools.count(1)

    def __call__(self, login: str) -> str:
        return self._names.get(login, login)

    async def make(self, school: School, accounts: Iterable[tuple[str, Role]],
                   password: str = PASSWORD) -> None:
        """This test's accounts (display names: the names the test uses, titled)."""
        number = next(self._tests)
        self._names.clear()
        for login, role in accounts:
            self._names[login] = f"{login}{number}"
            await school.directory.create_account(role=role, login=self(login),
                                                  password=password,
                                                  display_name=login.title())

    def forget(self) -> None:
        self._names.clear()



@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[School]:
    """The school of ``settings`` with every network service listening (on loopback)."""
    school = await School.open(settings, migrate=False)
    await school.start()
    try:
        yield school
    finally:
        await school.close()
