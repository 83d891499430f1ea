"""A running ``schulhof serve`` process with a few accounts, for the security tests.

The accounts are made in-process on the test database first; then the school
runs as its own process (as an attacker meets it) with its log in a file, so a
test can assert that nothing was logged as an ERROR or with a traceback.

Starting ``serve`` costs 10-45 s on a loaded machine, so the tests of one module
share one process (``served_school``, module-scoped; a module overrides
``served_settings`` for other settings) and, with ``--dist loadgroup``, one
xdist worker (tests/support/xdist_groups.py).  Each test sees only the log written since it started
(``served``); the tests that share a school's login throttle use their own
source addresses and accounts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conf.app import School
from conf.settings import Settings, render_settings_toml
from directory.model import Role
from tests.support.processes import stop_processes
from tests.support.schools import make_settings

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
#: login -> (role, password): a teacher, two pupils and a parent.
ACCOUNTS: dict[str, tuple[Role, str]] = {
    "lehrerin": (Role.TEACHER, "Lehrerin-Passwort-1"),
    "schueler": (Role.PUPIL, "Schueler-Passwort-1"),
    "schuelerin": (Role.PUPIL, "Schuelerin-Passwort-1"),
    "mutter": (Role.PARENT, "Mutter-Passwort-1"),
}
# What an operator would have to act on: an ERROR/CRITICAL record or a traceback.
_BAD_LINE = re.compile(r"level=(ERROR|CRITICAL)|\bERROR\b|^Traceback ", re.MULTILINE)


@dataclasses.dataclass
class ServedSchool:
    """A school running as ``schulhof serve`` in a child process, its stderr in ``log_path``."""

    settings: Settings
    proc: subprocess.Popen[bytes]
    log_path: Path
    log_offset: int = 0  # where this test's part of the log starts (``mark_log``)

    @property
    def host(self) -> str:
        return self.settings.listen.bind

    @property
    def domain(self) -> str:
        return self.settings.school.domain

    def address(self, login: str) -> str:
        return f"{login}@{self.domain}"

    @staticmethod
    def password(login: str) -> str:
        return ACCOUNTS[login][1]

    def log(self) -> str:
        """The log written since :meth:`mark_log` (since the current test started)."""
        with self.log_path.open("rb") as f:
            f.seek(self.log_offset)
            return f.read().decode(errors="replace")

    def mark_log(self) -> None:
        self.log_offset = self.log_path.stat().st_size

    def bad_log_lines(self) -> list[str]:
        return [line for line in self.log().splitlines() if _BAD_LINE.search(line)]


async def create_accounts(settings: Settings) -> None:
    school = await School.open(settings, migrate=False)
    try:
        for login, (role, password) in ACCOUNTS.items():
            await school.directory.create_account(role=role, login=login, password=password,
                                                  display_name=login.title())
    finally:
        await school.close()


def serve_school(settings: Settings) -> Iterator[ServedSchool]:
    """Run ``schulhof serve`` for ``settings`` until the test ends (then SIGTERM)."""
    config = settings.base_dir / "schulhof.toml"
    config.write_text(render_settings_toml(settings), encoding="utf-8")
    log_path = settings.base_dir / "serve.log"
    # The test runner's SCHULHOF_* variables (the test database URL) are not the school's.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHULHOF_")}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "conf.cli", "--config", str(config), "serve"],
            cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    served = ServedSchool(settings, proc, log_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while "event=ready" not in served.log():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"serve did not start:\n{served.log()[-3000:]}")
            time.sleep(0.05)
        yield served
    finally:
        stop_processes(proc, timeout=30)


@pytest.fixture(scope="module")
def served_settings(tmp_path_factory: pytest.TempPathFactory,
                    module_database_url: str) -> Settings:
    """The served school's settings; a module overrides this fixture for other settings."""
    return make_settings(tmp_path_factory.mktemp("served") / "schule", module_database_url)


@pytest.fixture(scope="module")
def served_school(served_settings: Settings) -> Iterator[ServedSchool]:
    """One ``serve`` for the tests of a module (see the module docstring)."""
    asyncio.run(create_accounts(served_settings))
    yield from serve_school(served_settings)


@pytest.fixture
def served(served_school: ServedSchool) -> ServedSchool:
    """The module's school, its log from this test's start on."""
    assert served_school.proc.poll() is None, (
        f"serve exited with {served_school.proc.returncode} during an earlier test:\n"
        + served_school.log()[-3000:])
    served_school.mark_log()
    return served_school
