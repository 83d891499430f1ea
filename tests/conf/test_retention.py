"""Retention with a clock that moves: Trash and Junk after 30 days, leavers erased on
their deletion date, class rooms' messages after a school year (course rooms kept),
client addresses after six months, audit entries after two years; counts reported and
the run itself audited.  Also the daily job's schedule."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from conf.admin.retention import run_retention
from conf.app import School
from conf.wiring.matrix import school_rooms
from conf.wiring.retention import seconds_until
from directory.audit import Actor
from directory.model import GroupKind, NotFound, Role, Status
from messenger.storage import events as store
from messenger.storage.tables import DeviceRow


def mail(subject: str) -> bytes:
    return f"From: x@example.org\r\nSubject: {subject}\r\n\r\nText\r\n".encode()


async def test_retention_as_the_clock_moves(school: School) -> None:
    now = dt.datetime.now(dt.UTC)
    d = school.directory
    anna = await d.create_account(role=Role.PUPIL, login="anna")
    await d.create_account(role=Role.PUPIL, login="carl")
    await d.set_status("carl", Status.LEAVER, (now + dt.timedelta(days=5)).date())
    await d.create_group("5a", kind=GroupKind.CLASS)
    await d.create_group("mathe", kind=GroupKind.COURSE)
    await d.add_member("5a", "anna")
    await d.add_member("mathe", "anna")
    keeper = school_rooms(school)
    await keeper.sync_group_rooms()
    class_event = await keeper.post("5a", "Wandertag am Freitag")
    course_event = await keeper.post("mathe", "Klausur am Montag")

    store_ = school.mail_store
    await store_.ensure_default_mailboxes(anna.id)
    for box, days in (("Trash", 10), ("Trash", 40), ("Junk", 31), ("INBOX", 400)):
        await store_.append(anna.id, box, mail(f"{box} {days}"),
                            internal_date=now - dt.timedelta(days=days))
    async with school.db.write() as session:
        session.add(DeviceRow(account_id=anna.id, device_id="ALT", last_seen_ip="192.0.2.9",
                              last_seen=now - dt.timedelta(days=200)))
        session.add(DeviceRow(account_id=anna.id, device_id="NEU", last_seen_ip="192.0.2.8",
                              last_seen=now - dt.timedelta(days=2)))
    await school.audit.record(Actor("chefin", "192.0.2.7"), "account.password", "anna")

    first = await run_retention(school, now)
    assert first.counts() == {"trash": 1, "junk": 1, "leavers": 0, "class_chat_events": 0,
                              "audit_addresses": 0, "device_addresses": 1,
                              "audit_entries": 0}
    assert [m.body for m in await store_.read_mailbox(anna.id, "Trash")] == [mail("Trash 10")]
    assert await store_.read_mailbox(anna.id, "Junk") == []
    assert (await store_.quota(anna.id)).used == len(mail("Trash 10")) + len(mail("INBOX 400"))
    async with school.db.read() as session:
        rows = (await session.execute(select(DeviceRow.device_id, DeviceRow.last_seen_ip))).all()
    ips = {device: ip for device, ip in rows}
    assert ips == {"ALT": None, "NEU": "192.0.2.8"}

    later = await run_retention(school, now + dt.timedelta(days=6))
    assert later.leavers == ["carl"] and later.trash == 0
    try:
        await d.get_account("carl")
        raise AssertionError("carl is still there")
    except NotFound:
        pass

    year = await run_retention(school, now + dt.timedelta(days=366))
    assert year.trash == 1 and year.class_chat_events == 1 and year.audit_addresses == 1
    assert year.audit_entries == 0
    async with school.db.read() as session:
        redacted = await store.get_event(session, class_event)
        kept = await store.get_event(session, course_event)
    assert redacted is not None and redacted.pdu["content"] == {}
    assert kept is not None and kept.pdu["content"]["body"] == "Klausur am Montag"
    assert len(await store_.read_mailbox(anna.id, "INBOX")) == 1  # the inbox is the user's
    password_entry = (await school.audit.entries(action="account.password"))[0]
    assert password_entry.client_address is None and password_entry.actor == "chefin"

    late = await run_retention(school, now + dt.timedelta(days=800))
    assert late.audit_entries >= 4  # everything the real clock wrote
    runs = await school.audit.entries(action="retention.run")
    assert [e.actor for e in runs] == ["system"]
    assert "audit_entries=" in runs[0].details


def test_the_daily_job_waits_for_its_time() -> None:
    tz = dt.timezone(dt.timedelta(hours=1))
    assert seconds_until(dt.datetime(2026, 5, 1, 3, 0, tzinfo=tz), "03:30") == 1800
    assert seconds_until(dt.datetime(2026, 5, 1, 3, 30, tzinfo=tz), "03:30") == 86400
    assert seconds_until(dt.datetime(2026, 5, 1, 23, 0, tzinfo=tz), "03:30") == 4.5 * 3600
