"""The bulk import of a school administration CSV export, from bytes to a summary.

read (``reading``) -> validate (``records``) -> plan against the directory
(``planning``) -> hash new passwords in parallel, outside any transaction ->
apply the plan in one write transaction (``applying``).  Nothing is written
unless the whole file is good.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from directory.importer.applying import apply_plan
from directory.importer.errors import ImportFileError
from directory.importer.passwords_file import PasswordsFile
from directory.importer.planning import ImportPlan, PlanOptions, plan_import
from directory.importer.profiles import GENERIC, ImportProfile
from directory.importer.reading import read_csv
from directory.importer.records import validate
from directory.importer.state import load_state
from directory.passwords import generate_password
from directory.service import Directory

log = logging.getLogger("schulhof.import")
LIGHT_HASH_MIN_LENGTH = 12  # shorter generated passwords get the full argon2 parameters


@dataclass(frozen=True)
class InitialPassword:
    """A new account's first password, for the passwords file or a letter."""

    login: str
    email: str
    first_name: str
    last_name: str
    role: str
    class_name: str
    password: str


@dataclass(frozen=True)
class ImportSummary:
    """What an import did (or, for a dry run, would do)."""

    plan: ImportPlan
    dry_run: bool
    rows: int
    encoding: str
    delimiter: str
    passwords_file: Path | None = None  # where new accounts' passwords were written
    seconds: Mapping[str, float] = field(default_factory=dict)  # phase -> duration
    # Asked for with ``issue_passwords``: for password letters (conf.admin.letters).
    initial_passwords: tuple[InitialPassword, ...] = ()

    @property
    def without_password(self) -> int:
        """New accounts that got no password (no passwords file was asked for)."""
        if self.passwords_file or self.initial_passwords or self.dry_run:
            return 0
        return len(self.plan.created)


class Importer:
    """Imports one school's CSV export into its directory."""

    def __init__(self, directory: Directory, *, profile: ImportProfile = GENERIC,
                 leaver_grace_days: int = 90, password_length: int = 12,
                 hash_workers: int | None = None) -> None:
        self.directory = directory
        self.profile = profile
        self.leaver_grace_days = leaver_grace_days
        self.password_length = password_length
        self.hash_workers = hash_workers or len(os.sched_getaffinity(0)) or 2

    async def run(self, data: bytes, *, dry_run: bool = False,
                  passwords_out: Path | None = None, issue_passwords: bool = False,
                  today: dt.date | None = None) -> ImportSummary:
        """Import ``data``; raises ``InvalidImportFile`` (every bad row) or ``ImportFileError``.

        With ``passwords_out`` new accounts get random passwords, written only
        there; with ``issue_passwords`` they are in the summary's
        ``initial_passwords`` (for letters); without either new accounts get none
        (they cannot log in until one is set).
        """
        clock = _Clock()
        table = read_csv(data)
        records = validate(table, self.profile)
        options = PlanOptions(today=today or dt.date.today(),
                              leaver_grace_days=self.leaver_grace_days,
                              local_domains=self.directory.local_domains)
        async with self.directory.db.read() as session:
            plan = plan_import(records, await load_state(session), options)
        clock.lap("plan")

        def summary(final: ImportPlan, passwords_file: Path | None = None,
                    issued: tuple[InitialPassword, ...] = ()) -> ImportSummary:
            return ImportSummary(final, dry_run, len(records), table.encoding, table.delimiter,
                                 passwords_file, clock.laps, issued)

        if dry_run:
            return summary(plan)
        out = PasswordsFile(passwords_out) if passwords_out and plan.created else None
        issue = bool(out) or issue_passwords
        issued: tuple[InitialPassword, ...] = ()
        try:
            passwords = {n.external_id: generate_password(self.password_length)
                         for n in plan.created} if issue else {}
            hashes = await self._hash_all(passwords)
            clock.lap("hash")
            async with self.directory.db.write() as session:
                # Plan again inside the transaction: the directory may have changed
                # while we hashed (the logins of new accounts are taken here).
                state = await load_state(session)
                plan = plan_import(records, state, options)
                if issue and any(n.external_id not in hashes for n in plan.created):
                    raise ImportFileError.of("directory_changed")
                await apply_plan(session, plan, state, hashes)
                issued = tuple(InitialPassword(
                    n.login, self.directory.address_of(n.login), n.first_name, n.last_name,
                    n.role.value, n.class_name or "", passwords[n.external_id])
                    for n in plan.created if n.external_id in passwords)
                if out:
                    out.write((p.login, p.email, p.first_name, p.last_name, p.role,
                               p.class_name, p.password) for p in issued)
            self.directory.changes.changed()  # committed: the caches forget
            clock.lap("write")
        except IntegrityError as exc:  # PostgreSQL: a login or group name taken meanwhile
            if out:
                out.discard()
            raise ImportFileError.of("directory_changed") from exc
        except BaseException:
            if out:
                out.discard()
            raise
        if out:
            out.close()
        result = summary(plan, out.path if out else None, issued if issue_passwords else ())
        p = result.plan
        log.info("event=import rows=%d created=%d updated=%d moved=%d leavers=%d restored=%d "
                 "groups_created=%d groups_renamed=%d groups_removed=%d memberships=%d "
                 "seconds=%.2f", result.rows, len(p.created), len(p.updated), len(p.moved),
                 len(p.leavers), len(p.restored), len(p.groups_created),
                 len(p.groups_changed), len(p.groups_removed), len(p.memberships),
                 sum(result.seconds.values()))
        return result

    async def _hash_all(self, passwords: Mapping[str, str]) -> dict[str, str]:
        """argon2 hashes of ``passwords`` on all cores (argon2-cffi releases the GIL)."""
        if not passwords:
            return {}
        loop = asyncio.get_running_loop()
        hasher = self.directory.hasher
        # The light parameters are safe only for long random passwords (the readable
        # alphabet gives 5.8 bits a character: 12 characters are about 70 bits).
        light = self.password_length >= LIGHT_HASH_MIN_LENGTH
        hash_sync = hasher.hash_generated_sync if light else hasher.hash_sync
        with ThreadPoolExecutor(self.hash_workers, thread_name_prefix="import-hash") as pool:
            hashes = await asyncio.gather(*(loop.run_in_executor(pool, hash_sync, password)
                                            for password in passwords.values()))
        return dict(zip(passwords, hashes, strict=True))


class _Clock:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self._last
        self._last = now
