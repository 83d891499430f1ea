"""Mail settings and the once-per-period vacation record (both backends)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from directory.db import Database
from mailserver.store import MailStore
from mailserver.store.account_settings import MailSettings
from tests.mailserver.store.conftest import make_account

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


async def test_settings_round_trip_and_vacation_accounts(store: MailStore, db: Database) -> None:
    anna, paul = await make_account(db, "teacher"), await make_account(db)
    assert await store.settings.get(anna) == MailSettings()
    away = MailSettings(signature="Anna", vacation_enabled=True, vacation_body="Weg",
                        vacation_days=99, vacation_until=dt.date(2026, 12, 24))
    await store.settings.save(anna, away)
    assert await store.settings.get(anna) == dataclasses.replace(away, vacation_days=30)
    assert await store.settings.vacation_accounts([anna, paul]) == {anna}
    await store.settings.save(anna, dataclasses.replace(away, vacation_enabled=False))
    assert await store.settings.vacation_accounts([anna, paul]) == set()
    assert not away.vacation_active(dt.date(2026, 12, 25))


async def test_one_reply_per_sender_per_period(store: MailStore, db: Database) -> None:
    anna = await make_account(db, "teacher")
    claim = store.settings.claim_vacation_reply
    assert await claim(anna, "Eva@Eltern.example", NOW, 7)
    assert not await claim(anna, "eva@eltern.example", NOW + dt.timedelta(days=6), 7)
    assert await claim(anna, "other@eltern.example", NOW, 7)
    assert await claim(anna, "eva@eltern.example", NOW + dt.timedelta(days=8), 7)
    # Switching the reply off and on starts a new period for everybody.
    await store.settings.save(anna, MailSettings(vacation_enabled=False))
    assert await claim(anna, "eva@eltern.example", NOW + dt.timedelta(days=9), 7)
