"""A school with fuzz accounts and some mail, served by a real ``schulhof serve`` process."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from conf.app import School
from conf.settings import AuthSettings, SmtpSettings
from directory.model import Role
from tests.fuzz.harness import Campaign, env_float, fuzz_seconds, fuzz_seed
from tests.fuzz.imap_cases import MESSAGE
from tests.support.schools import make_settings
from tests.support.serve_process import ServeProcess

PASSWORD = "Fuzz-Passwort-1"
# The harness's own logins; the fuzzers' LOGIN/AUTH guesses never use these names.
FUZZ_LOGINS = ("fuzz1", "fuzz2", "fuzz3", "fuzz4")
OTHER_LOGINS = {"anna": Role.PUPIL, "ben": Role.PUPIL, "lehrer": Role.TEACHER,
                "mutter": Role.PARENT}
PROTOCOLS = 3  # the budget is split between IMAP, SMTP and Matrix


def short_lockouts(auth: AuthSettings) -> AuthSettings:
    """Failed-login delays of at most 2 s (the fuzzers guess passwords all the time)."""
    names = {f.name for f in dataclasses.fields(auth)}
    changes = {name: 2.0 for name in ("max_delay_seconds", "account_max_delay_seconds")
               if name in names}
    return dataclasses.replace(auth, **changes)


@pytest.fixture
async def fuzz_server(tmp_path: Path, database_url: str) -> AsyncIterator[ServeProcess]:
    settings = make_settings(
        tmp_path / "schule", database_url,
        # Many connections from one address are the point here, and failed
        # logins must not lock the harness's own sessions out for long.
        smtp=SmtpSettings(idle_timeout_seconds=30.0, max_connections_per_ip=200),
        auth=short_lockouts(AuthSettings()))
    school = await School.open(settings, migrate=False)
    try:
        for login in FUZZ_LOGINS:
            account = await school.directory.create_account(
                role=Role.TEACHER, login=login, password=PASSWORD, display_name=login.title())
            for box in ("INBOX", "INBOX"):
                await school.mail_store.append(account.id, box, MESSAGE)
        for login, role in OTHER_LOGINS.items():
            await school.directory.create_account(role=role, login=login, password=PASSWORD,
                                                  display_name=login.title())
    finally:
        await school.close()
    server = ServeProcess.for_settings(settings)
    await server.start()
    try:
        yield server
    finally:
        code = await server.stop()
        bad = server.new_bad_log_lines()
        assert code == 0, f"serve did not stop cleanly ({code}):\n{server.log_text()[-3000:]}"
        assert not bad, "errors logged while stopping:\n" + bad[0]


def campaign(name: str, server: ServeProcess) -> Campaign:
    seed = fuzz_seed()
    c = Campaign(name=name, server=server, seed=seed,
                 seconds=fuzz_seconds() / PROTOCOLS,
                 workers=int(env_float("FUZZ_WORKERS", 4)),
                 hang_seconds=env_float("FUZZ_HANG_SECONDS", 15.0),
                 rss_growth_mib=env_float("FUZZ_RSS_GROWTH_MIB", 96.0))
    print(f"\nfuzz {name}: FUZZ_SEED={seed} FUZZ_SECONDS={fuzz_seconds():.0f} "
          f"({c.seconds:.0f} s here)", flush=True)
    return c


def timeout_for_budget() -> float:
    """pytest-timeout for one protocol's test: its share of the budget plus set-up."""
    return fuzz_seconds() / PROTOCOLS + 240
