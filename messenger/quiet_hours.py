"""Quiet hours (issue 17): when no push notification goes to a person's phone.

Messages still arrive in the app; only the push (Client-Server API "Push
Notifications": the server's POST to the push gateway) is held back.  A window is
school-wide (e.g. 20:00-07:00 and weekends), may differ per role ("teacher=off"),
and each person may override it in their Matrix account data
(``de.schulhof.quiet_hours``: ``{"enabled": false}`` or ``{"start": "21:00",
"end": "06:30", "weekends": true}``), set from any client.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from directory.db import Database
from directory.model import Role
from directory.schema import AccountRow
from messenger.storage.tables import AccountDataRow

ACCOUNT_DATA_TYPE = "de.schulhof.quiet_hours"
_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def parse_clock(text: str) -> dt.time:
    """``HH:MM`` (24 hours); raises ValueError."""
    match = _CLOCK.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a time of day (HH:MM): {text!r}")
    return dt.time(int(match.group(1)), int(match.group(2)))


@dataclass(frozen=True)
class QuietWindow:
    """Quiet from ``start`` to ``end`` (across midnight when ``end`` is earlier), and
    all of Saturday and Sunday with ``weekends``.  ``start == end``: no daily window."""

    start: dt.time
    end: dt.time
    weekends: bool = True

    @classmethod
    def parse(cls, text: str, weekends: bool = True) -> QuietWindow:
        """``"20:00-07:00"``; raises ValueError."""
        start, sep, end = text.partition("-")
        if not sep:
            raise ValueError(f"not a window (HH:MM-HH:MM): {text!r}")
        return cls(parse_clock(start), parse_clock(end), weekends)

    def covers(self, local: dt.datetime) -> bool:
        if self.weekends and local.weekday() >= 5:
            return True
        now = local.time().replace(tzinfo=None)
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end


@dataclass(frozen=True)
class QuietRules:
    """The school's window, per-role replacements (None: no quiet hours for the role)."""

    school: QuietWindow | None
    timezone: str = "Europe/Berlin"
    roles: Mapping[Role, QuietWindow | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ZoneInfo(self.timezone)  # an unknown zone fails at start, not at the first push

    def window(self, role: Role, personal: Mapping[str, Any] | None = None
               ) -> QuietWindow | None:
        """The window that applies: the person's own, else the role's, else the school's."""
        if personal is not None:
            own = personal_window(personal)
            if own is not _INHERIT:
                return own  # type: ignore[return-value]
        if role in self.roles:
            return self.roles[role]
        return self.school

    def is_quiet(self, role: Role, now: dt.datetime,
                 personal: Mapping[str, Any] | None = None) -> bool:
        window = self.window(role, personal)
        return window is not None and window.covers(now.astimezone(ZoneInfo(self.timezone)))


_INHERIT = object()


def personal_window(content: Mapping[str, Any]) -> QuietWindow | object | None:
    """A person's override from account data: a window, None (no quiet hours), or
    ``_INHERIT`` when the content says nothing usable (a client's mistake must not
    silence or wake anyone)."""
    if content.get("enabled") is False:
        return None
    start, end = content.get("start"), content.get("end")
    if not isinstance(start, str) or not isinstance(end, str):
        return _INHERIT
    try:
        return QuietWindow(parse_clock(start), parse_clock(end),
                           content.get("weekends", True) is not False)
    except ValueError:
        return _INHERIT


def parse_role_windows(entries: Iterable[str], weekends: bool
                       ) -> dict[Role, QuietWindow | None]:
    """``["teacher=off", "pupil=19:00-07:00"]``; raises ValueError naming the entry."""
    out: dict[Role, QuietWindow | None] = {}
    for entry in entries:
        name, sep, value = entry.partition("=")
        try:
            role = Role(name.strip())
        except ValueError:
            raise ValueError(f"unknown role in {entry!r}") from None
        if not sep:
            raise ValueError(f"expected ROLE=HH:MM-HH:MM or ROLE=off: {entry!r}")
        out[role] = None if value.strip() == "off" else QuietWindow.parse(value, weekends)
    return out


class QuietHours:
    """Which users are in their quiet hours now (for the push sender)."""

    def __init__(self, db: Database, rules: QuietRules, server_name: str, *,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.db = db
        self.rules = rules
        self.server_name = server_name
        self._clock = clock

    async def quiet_users(self, user_ids: Iterable[str]) -> set[str]:
        suffix = f":{self.server_name}"
        logins = {u[1:-len(suffix)]: u for u in user_ids
                  if u.startswith("@") and u.endswith(suffix)}
        if not logins:
            return set()
        async with self.db.read() as session:
            accounts = (await session.execute(select(AccountRow.id, AccountRow.login,
                                                     AccountRow.role)
                                              .where(AccountRow.login.in_(logins)))).all()
            ids = {account_id: login for account_id, login, _ in accounts}
            personal = dict((await session.execute(
                select(AccountDataRow.account_id, AccountDataRow.content).where(
                    AccountDataRow.account_id.in_(ids), AccountDataRow.room_id == "",
                    AccountDataRow.type == ACCOUNT_DATA_TYPE))).all())
        now = self._clock()
        quiet = set()
        for account_id, login, role in accounts:
            content = None
            if account_id in personal:
                try:
                    loaded = json.loads(personal[account_id])
                    content = loaded if isinstance(loaded, dict) else None
                except ValueError:
                    content = None
            if self.rules.is_quiet(Role(role), now, content):
                quiet.add(logins[login])
        return quiet
