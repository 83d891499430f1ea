"""Per-account mail settings that delivery applies: signature, vacation reply,
forwarding to another school address; and the record of vacation replies
sent (RFC 3834 2: at most one reply per sender per period).

A simple vacation rule in the store until Sieve (RFC 5230) replaces it: the
same fields (subject, text, days, end date) map onto a Sieve ``vacation``
action.  ``vacation_accounts`` is asked on every delivery, so the set of
accounts with a vacation reply on is cached briefly and refreshed at once
when a setting changes through this object.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from sqlalchemy import delete, select, update

from directory.db import Database, affected_rows
from directory.schema import table_of
from mailserver.schema import MailSettingsRow, VacationReplyRow
from mailserver.store import queries as q

VACATION_CACHE_SECONDS = 10.0
MIN_DAYS, MAX_DAYS = 1, 30  # RFC 5230 4.1: at least a day; we cap a "period" at a month

_settings = table_of(MailSettingsRow)
_replies = table_of(VacationReplyRow)


@dataclass(frozen=True)
class MailSettings:
    signature: str = ""
    vacation_enabled: bool = False
    vacation_subject: str = ""
    vacation_body: str = ""
    vacation_days: int = 7
    vacation_until: dt.date | None = None  # last day the reply is sent; None: until off
    forward_to: str | None = None
    forward_keep: bool = True

    def vacation_active(self, today: dt.date) -> bool:
        return self.vacation_enabled and (self.vacation_until is None
                                          or today <= self.vacation_until)


class SettingsStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        # (expiry, accounts with a vacation reply on, accounts that forward)
        self._rules_cache: tuple[float, frozenset[int], frozenset[int]] | None = None

    async def get(self, account_id: int) -> MailSettings:
        async with self._db.read() as session:
            row = (await session.execute(select(_settings).where(
                _settings.c.account_id == account_id))).one_or_none()
        if row is None:
            return MailSettings()
        values = row._asdict()
        values.pop("account_id")
        return MailSettings(**values)

    async def save(self, account_id: int, settings: MailSettings) -> None:
        values = asdict(settings)
        values["vacation_days"] = min(max(settings.vacation_days, MIN_DAYS), MAX_DAYS)
        async with self._db.write() as session:
            inserted = await session.execute(q.insert_ignoring_conflict(session, _settings)
                                             .values(account_id=account_id, **values))
            if not affected_rows(inserted):
                await session.execute(update(_settings).where(
                    _settings.c.account_id == account_id).values(**values))
            if not settings.vacation_enabled:
                # A new absence starts a new period for every sender.
                await session.execute(delete(_replies).where(
                    _replies.c.account_id == account_id))
        self._rules_cache = None

    async def _rules(self) -> tuple[frozenset[int], frozenset[int]]:
        now = time.monotonic()
        if self._rules_cache is None or self._rules_cache[0] < now:
            async with self._db.read() as session:
                rows = (await session.execute(select(
                    _settings.c.account_id, _settings.c.vacation_enabled,
                    _settings.c.forward_to).where(
                    _settings.c.vacation_enabled.is_(True)
                    | _settings.c.forward_to.is_not(None)))).all()
            self._rules_cache = (now + VACATION_CACHE_SECONDS,
                                 frozenset(r.account_id for r in rows if r.vacation_enabled),
                                 frozenset(r.account_id for r in rows if r.forward_to))
        return self._rules_cache[1], self._rules_cache[2]

    async def vacation_accounts(self, account_ids: Iterable[int]) -> set[int]:
        """Which of ``account_ids`` have a vacation reply switched on (cached briefly)."""
        enabled, _ = await self._rules()
        return {account_id for account_id in account_ids if account_id in enabled}

    async def forwarding_accounts(self, account_ids: Iterable[int]) -> set[int]:
        """Which of ``account_ids`` forward their mail (cached briefly)."""
        _, forwarding = await self._rules()
        return {account_id for account_id in account_ids if account_id in forwarding}

    async def claim_vacation_reply(self, account_id: int, sender: str, now: dt.datetime,
                                   days: int) -> bool:
        """True (and recorded) when ``sender`` got no reply from this account in the
        last ``days`` days (RFC 3834 2, RFC 5230 4.1); False otherwise."""
        sender = sender.lower()
        since = now - dt.timedelta(days=min(max(days, MIN_DAYS), MAX_DAYS))
        async with self._db.write() as session:
            inserted = await session.execute(q.insert_ignoring_conflict(session, _replies)
                                             .values(account_id=account_id, sender=sender,
                                                     replied_at=now))
            if affected_rows(inserted):
                return True
            renewed = await session.execute(update(_replies).where(
                _replies.c.account_id == account_id, _replies.c.sender == sender,
                _replies.c.replied_at < since).values(replied_at=now))
            return affected_rows(renewed) > 0
