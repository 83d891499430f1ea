"""Storage of each account's Sieve scripts (RFC 5804 1.1: named scripts, at most
one active) and the active programs delivery runs.

Delivery asks ``active_programs`` on every message, so the checked programs
of all active scripts are cached briefly (few accounts have one) and the
cache is dropped at once when a script changes through this object; another
process sees a change within ``CACHE_SECONDS``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable

from sqlalchemy import delete, func, select, update

from directory.db import Database, affected_rows
from directory.schema import table_of
from mailserver.schema import SieveScriptRow
from mailserver.sieve.checks import Program, compile_script
from mailserver.sieve.grammar import SieveSyntaxError

log = logging.getLogger("schulhof.sieve")

CACHE_SECONDS = 10.0
MAX_SCRIPTS = 16
MAX_NAME_LENGTH = 128

_scripts = table_of(SieveScriptRow)


class ScriptError(Exception):
    """Base of the script store's refusals (ManageSieve NO with a response code)."""

    code = ""


class ScriptNotFound(ScriptError):
    code = "NONEXISTENT"  # RFC 5804 1.3


class ScriptExists(ScriptError):
    code = "ALREADYEXISTS"


class ScriptActive(ScriptError):
    code = "ACTIVE"


class TooManyScripts(ScriptError):
    code = "QUOTA/MAXSCRIPTS"


def _existing_name(name: str) -> str:
    """``name`` if a stored script could have it; else no such script (put() stores
    only checked names, and PostgreSQL refuses a NUL in a query's text)."""
    try:
        return check_name(name)
    except ScriptError:
        raise ScriptNotFound(name[:MAX_NAME_LENGTH]) from None


def check_name(name: str) -> str:
    """RFC 5804 1.6: a script name is a non-empty string without control characters."""
    if not name or len(name) > MAX_NAME_LENGTH or any(
            ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029" for c in name):
        raise ScriptError("invalid script name")
    return name


class SieveScripts:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._cache: tuple[float, dict[int, Program]] | None = None

    async def names(self, account_id: int) -> list[tuple[str, bool]]:
        """(name, active) of every script of the account, by name."""
        async with self._db.read() as session:
            rows = await session.execute(select(_scripts.c.name, _scripts.c.active).where(
                _scripts.c.account_id == account_id).order_by(_scripts.c.name))
            return [(name, bool(active)) for name, active in rows]

    async def get(self, account_id: int, name: str) -> str:
        _existing_name(name)
        async with self._db.read() as session:
            script = (await session.execute(select(_scripts.c.script).where(
                _scripts.c.account_id == account_id, _scripts.c.name == name))).scalar()
        if script is None:
            raise ScriptNotFound(name)
        return str(script)

    async def put(self, account_id: int, name: str, script: str) -> None:
        """Store (or replace) a script that already passed ``compile_script``."""
        check_name(name)
        now = dt.datetime.now(dt.UTC)
        async with self._db.write() as session:
            updated = await session.execute(update(_scripts).where(
                _scripts.c.account_id == account_id, _scripts.c.name == name).values(
                script=script, updated_at=now))
            if not affected_rows(updated):
                count = (await session.execute(select(func.count()).select_from(_scripts).where(
                    _scripts.c.account_id == account_id))).scalar_one()
                if count >= MAX_SCRIPTS:
                    raise TooManyScripts(f"at most {MAX_SCRIPTS} scripts")
                await session.execute(_scripts.insert().values(
                    account_id=account_id, name=name, script=script, active=False,
                    updated_at=now))
        self._cache = None

    async def may_add(self, account_id: int, name: str) -> bool:
        """RFC 5804 2.3 HAVESPACE: whether a script of that name would fit."""
        names = [n for n, _ in await self.names(account_id)]
        return name in names or len(names) < MAX_SCRIPTS

    async def delete(self, account_id: int, name: str) -> None:
        _existing_name(name)
        async with self._db.write() as session:
            active = (await session.execute(select(_scripts.c.active).where(
                _scripts.c.account_id == account_id, _scripts.c.name == name))).scalar()
            if active is None:
                raise ScriptNotFound(name)
            if active:
                raise ScriptActive(name)  # RFC 5804 2.10
            await session.execute(delete(_scripts).where(
                _scripts.c.account_id == account_id, _scripts.c.name == name))
        self._cache = None

    async def rename(self, account_id: int, old: str, new: str) -> None:
        _existing_name(old)
        check_name(new)
        async with self._db.write() as session:
            exists = (await session.execute(select(_scripts.c.name).where(
                _scripts.c.account_id == account_id, _scripts.c.name == new))).scalar()
            if exists is not None:
                raise ScriptExists(new)
            renamed = await session.execute(update(_scripts).where(
                _scripts.c.account_id == account_id, _scripts.c.name == old).values(name=new))
            if not affected_rows(renamed):
                raise ScriptNotFound(old)
        self._cache = None

    async def activate(self, account_id: int, name: str) -> None:
        """RFC 5804 2.8 SETACTIVE; the empty name deactivates every script."""
        if name:
            _existing_name(name)
        async with self._db.write() as session:
            if name:
                exists = (await session.execute(select(_scripts.c.name).where(
                    _scripts.c.account_id == account_id, _scripts.c.name == name))).scalar()
                if exists is None:
                    raise ScriptNotFound(name)
            await session.execute(update(_scripts).where(
                _scripts.c.account_id == account_id).values(active=_scripts.c.name == name))
        self._cache = None

    async def active_programs(self, account_ids: Iterable[int]) -> dict[int, Program]:
        """The checked active program of each of ``account_ids`` that has one."""
        now = time.monotonic()
        if self._cache is None or self._cache[0] < now:
            async with self._db.read() as session:
                rows = (await session.execute(select(
                    _scripts.c.account_id, _scripts.c.script).where(
                    _scripts.c.active.is_(True)))).all()
            programs: dict[int, Program] = {}
            for account_id, script in rows:
                try:
                    programs[account_id] = compile_script(script)
                except SieveSyntaxError as error:  # stored before a stricter check
                    log.warning("event=sieve_script_invalid account=%s reason=%s",
                                account_id, error)
            self._cache = (now + CACHE_SECONDS, programs)
        programs = self._cache[1]
        return {a: programs[a] for a in account_ids if a in programs}
