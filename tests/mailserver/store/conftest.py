"""Fixtures for the mail store tests: a store on the per-test database, accounts."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from sqlalchemy import insert

from directory.db import Database
from directory.schema import AccountRow
from mailserver.changes import ChangeFeed
from mailserver.store import MailStore

PUPIL_QUOTA = 10_000  # bytes: small, so tests reach it with a few messages
QUOTAS = {"pupil": PUPIL_QUOTA, "teacher": 0, "parent": 0, "staff": 0, "admin": 0}

_logins = itertools.count()


async def make_account(db: Database, role: str = "pupil", login: str | None = None) -> int:
    """An account row straight in the directory table (the store needs only id and role)."""
    now = dt.datetime.now(dt.UTC)
    async with db.write() as session:
        return int(await session.scalar(insert(AccountRow).values(
            login=login or f"user{next(_logins)}", display_name="Test", first_name="",
            last_name="", role=role, status="active", password_hash="",
            created_at=now, updated_at=now).returning(AccountRow.id)))


@pytest.fixture
def feed() -> ChangeFeed:
    return ChangeFeed()


@pytest.fixture
def store(db: Database, feed: ChangeFeed) -> MailStore:
    return MailStore(db, QUOTAS, feed)
