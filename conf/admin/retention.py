"""Retention (GDPR Art. 5(1)(e) storage limitation): the daily clean-up.

Composed from every package's part with the school's ``[retention]`` settings:
Trash and Junk emptied after their days, leavers erased once their deletion
date has come (with their mail, chat and files: ``erase_account``), class
rooms' messages redacted after a school year, client addresses in the audit
log and on devices removed after six months, old audit entries removed.
Run by ``schulhof serve`` daily and by ``schulhof purge``; the clock is an
argument, so tests move it.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from conf.admin.erasure import erase_account
from conf.admin.parts import mail_data, messenger_data
from directory.audit import SYSTEM, Actor
from directory.model import GroupKind, Status

if TYPE_CHECKING:
    from conf.app import School

log = logging.getLogger("schulhof")


@dataclass(frozen=True)
class RetentionReport:
    trash: int = 0
    junk: int = 0
    leavers: list[str] = field(default_factory=list)
    class_chat_events: int = 0
    audit_addresses: int = 0
    device_addresses: int = 0
    audit_entries: int = 0

    def counts(self) -> dict[str, int]:
        return {"trash": self.trash, "junk": self.junk, "leavers": len(self.leavers),
                "class_chat_events": self.class_chat_events,
                "audit_addresses": self.audit_addresses,
                "device_addresses": self.device_addresses,
                "audit_entries": self.audit_entries}


def _before(now: dt.datetime, days: int) -> dt.datetime | None:
    return now - dt.timedelta(days=days) if days > 0 else None


async def run_retention(school: School, now: dt.datetime, actor: Actor = SYSTEM
                        ) -> RetentionReport:
    r = school.settings.retention
    mail, chat = mail_data(school), messenger_data(school)
    trash = junk = 0
    if (cut := _before(now, r.trash_days)) is not None:
        trash = await mail.expire("\\Trash", cut)
    if (cut := _before(now, r.junk_days)) is not None:
        junk = await mail.expire("\\Junk", cut)

    leavers = [a.login for a in await school.directory.list_accounts(status=Status.LEAVER)
               if a.deletion_date is not None and a.deletion_date <= now.date()]
    for login in leavers:
        await erase_account(school, login, actor, reason="leaver")

    class_events = 0
    if (cut := _before(now, r.class_chat_days)) is not None:
        classes = [g.id for g in await school.directory.list_groups(GroupKind.CLASS)]
        rooms = await chat.group_room_ids(classes)
        class_events = await chat.expire_history(rooms, int(cut.timestamp() * 1000))

    audit_addresses = device_addresses = audit_entries = 0
    if (cut := _before(now, r.personal_log_days)) is not None:
        audit_addresses = await school.audit.forget_addresses(cut)
        device_addresses = await chat.forget_device_addresses(cut)
    if (cut := _before(now, r.audit_days)) is not None:
        audit_entries = await school.audit.remove_older_than(cut)

    report = RetentionReport(trash, junk, leavers, class_events, audit_addresses,
                             device_addresses, audit_entries)
    await school.audit.record(actor, "retention.run", "", report.counts())
    log.info("event=retention %s", " ".join(f"{k}={v}" for k, v in report.counts().items()))
    return report
