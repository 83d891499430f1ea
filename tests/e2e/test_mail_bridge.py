"""Mail -> room end to end (issue 18): a teacher's mail to the class address, sent
over submission with aiosmtplib, appears in the class room for a pupil's matrix-nio
client, from the school's system user, once however often it is delivered (also twice at the
same moment); a mail the role policy refuses at SMTP posts nothing; an encrypted room
gets a notice only; a pupil who left the class gets nothing more, in the room or by
mail."""

from __future__ import annotations

import asyncio

import aiosmtplib
import pytest
from nio import AsyncClient, RoomMessageNotice, RoomMessageText, SyncResponse

from conf.app import School
from directory.model import GroupKind, MemberRole, Role
from messenger.server import MatrixServer
from tests.support.bridge import (
    DOMAIN,
    PASSWORD,
    SYSTEM,
    collect,
    from_system,
    group_rooms,
    inbox,
    nio_client,
    settled,
    submit,
)

PLAIN_AND_HTML = (
    b"From: Frau Lehrer <lehrer@schule.test>\r\n"
    b"To: 5a@schule.test\r\n"
    b"Message-ID: <wandertag-1@schule.test>\r\n"
    b"Subject: =?utf-8?q?Wandertag_am_Freitag_=E2=80=93_bitte_lesen?=\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="b"\r\n'
    b"\r\n"
    b"--b\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Treffpunkt 8 Uhr am Tor. Festes Schuhwerk!\r\n"
    b"--b\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b"<p>Treffpunkt <b>8 Uhr</b> am Tor.</p>\r\n"
    b"--b--\r\n"
)

HTML_ONLY = (
    b"From: Frau Lehrer <lehrer@schule.test>\r\n"
    b"To: 5a@schule.test\r\n"
    b"Message-ID: <elternabend-2@schule.test>\r\n"
    b"Subject: Elternabend\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b"<html><head><style>p{color:red}</style><script>alert('x')</script></head>"
    b"<body><p>Am <i>Montag</i> um 19 Uhr.</p><img src=x onerror=alert(1)></body></html>\r\n"
)


@pytest.fixture
async def server(running_school: School) -> MatrixServer:
    d = running_school.directory
    await d.create_account(role=Role.TEACHER, login="lehrer", password=PASSWORD)
    await d.create_account(role=Role.PUPIL, login="anna", password=PASSWORD)
    for group in ("5a", "5b"):
        await d.create_group(group, kind=GroupKind.CLASS, display_name=f"Klasse {group}")
        await d.add_member(group, "lehrer", MemberRole.OWNER)
        await d.add_member(group, "anna")
    return await group_rooms(running_school)


async def test_class_mail_appears_once_in_the_class_room(
        running_school: School, server: MatrixServer, pupil: AsyncClient) -> None:
    room_id = await server.school_rooms.room_of_group("5a")
    assert room_id is not None
    first = await pupil.sync(timeout=0)
    assert isinstance(first, SyncResponse) and room_id in first.rooms.join

    await submit(running_school, "lehrer", f"5a@{DOMAIN}", PLAIN_AND_HTML)
    await submit(running_school, "lehrer", f"5a@{DOMAIN}", PLAIN_AND_HTML)  # again
    await submit(running_school, "lehrer", f"5a@{DOMAIN}", HTML_ONLY)
    # A pupil may not post to the class list: refused at RCPT, nothing bridged.
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        await submit(running_school, "anna", f"5a@{DOMAIN}", HTML_ONLY.replace(
            b"elternabend-2", b"von-anna-3").replace(b"lehrer@", b"anna@"))
    assert refused.value.recipients[0].code == 550

    # The bridge posts after the 250: sync until both arrived, then once more.
    messages = await collect(pupil, room_id, first.next_batch, want=2)
    assert len(messages) == 2, [m.body for m in messages]
    wander, abend = messages
    assert isinstance(wander, RoomMessageText)
    assert wander.body.startswith("✉ E-Mail von Frau Lehrer <lehrer@schule.test>\n"
                                  "Betreff: Wandertag am Freitag – bitte lesen\n\n"
                                  "Treffpunkt 8 Uhr am Tor. Festes Schuhwerk!\n\n"
                                  "Im Webmail öffnen: https://mail.schule.test:"), wander.body
    assert wander.source["content"]["org.schulhof.mail"]["from"] == "lehrer@schule.test"
    # The HTML alternative, in the Matrix subset, with the link at the end.
    assert wander.source["content"]["format"] == "org.matrix.custom.html"
    assert "<p>Treffpunkt <b>8 Uhr</b> am Tor.</p>" in wander.formatted_body
    assert "Betreff: Elternabend" in abend.body
    assert "Am Montag um 19 Uhr." in abend.body
    text, link = abend.body.split("\n\n")[1:]
    assert text == "Am Montag um 19 Uhr."  # no tags, no script, no style sheet
    assert link.startswith("Im Webmail öffnen: https://mail.schule.test:")
    formatted = abend.formatted_body
    assert "<p>Am <i>Montag</i> um 19 Uhr.</p>" in formatted
    for banned in ("script", "alert", "style", "<img", "onerror", "<html", "<head"):
        assert banned not in formatted, banned


async def test_encrypted_room_gets_a_notice_without_the_mail(
        running_school: School, server: MatrixServer, pupil: AsyncClient) -> None:
    room_id = await server.school_rooms.room_of_group("5b")
    assert room_id is not None
    await server.rooms.append_as(SYSTEM, room_id, "m.room.encryption",
                                 {"algorithm": "m.megolm.v1.aes-sha2"}, state_key="")
    first = await pupil.sync(timeout=0)
    assert isinstance(first, SyncResponse)

    await submit(running_school, "lehrer", f"5b@{DOMAIN}",
                 PLAIN_AND_HTML.replace(b"5a@", b"5b@"))
    messages = await collect(pupil, room_id, first.next_batch, want=1)
    assert len(messages) == 1
    notice = messages[0]
    assert isinstance(notice, RoomMessageNotice)
    assert "verschlüsselt" in notice.body and "Frau Lehrer" in notice.body
    assert "Treffpunkt" not in notice.body and "Wandertag" not in notice.body


async def test_setting_off_and_group_without_room_post_nothing(
        running_school: School, server: MatrixServer, pupil: AsyncClient) -> None:
    room_id = await server.school_rooms.room_of_group("5a")
    assert room_id is not None
    d = running_school.directory
    await d.create_group("ag-chor", kind=GroupKind.COURSE, display_name="Chor")
    await d.add_member("ag-chor", "lehrer", MemberRole.OWNER)
    await d.add_member("ag-chor", "anna")  # no room yet: the sync has not run since
    assert await server.school_rooms.room_of_group("ag-chor") is None
    first = await pupil.sync(timeout=0)
    assert isinstance(first, SyncResponse)

    await submit(running_school, "lehrer", f"ag-chor@{DOMAIN}",
                 PLAIN_AND_HTML.replace(b"5a@", b"ag-chor@"))  # delivered, not bridged
    running_school.mail_bridge.enabled = False  # bridge.mail_to_rooms = false
    await submit(running_school, "lehrer", f"5a@{DOMAIN}", HTML_ONLY)
    await settled(running_school)
    running_school.mail_bridge.enabled = True
    # The mail that was not bridged stays so: only the next one (a new Message-ID) shows.
    await submit(running_school, "lehrer", f"5a@{DOMAIN}", PLAIN_AND_HTML)
    messages = await collect(pupil, room_id, first.next_batch, want=1)
    assert [m.body.splitlines()[1] for m in messages] == \
        ["Betreff: Wandertag am Freitag – bitte lesen"]
    await server.school_rooms.sync_group_rooms()
    chor = await server.school_rooms.room_of_group("ag-chor")
    assert chor is not None
    later = await pupil.sync(timeout=2000, since=first.next_batch)
    assert isinstance(later, SyncResponse)
    assert from_system(later, chor) == []


async def test_the_same_mail_delivered_twice_at_once_is_posted_once(
        running_school: School, server: MatrixServer, pupil: AsyncClient) -> None:
    room_id = await server.school_rooms.room_of_group("5a")
    assert room_id is not None
    first = await pupil.sync(timeout=0)
    assert isinstance(first, SyncResponse)
    await asyncio.gather(*(submit(running_school, "lehrer", f"5a@{DOMAIN}", PLAIN_AND_HTML)
                          for _ in range(3)))
    await settled(running_school)
    messages = await collect(pupil, room_id, first.next_batch, want=1)
    assert len(messages) == 1, [m.body for m in messages]


def _inbox_subjects(school: School, login: str) -> list[str]:
    return [str(message["Subject"]) for message in inbox(school, login)]


async def test_a_pupil_who_left_the_class_gets_nothing_more(
        running_school: School, server: MatrixServer, pupil: AsyncClient) -> None:
    """Rule 4: anna leaves 5a; the next class mail reaches ben by mail and in the room,
    anna neither: not in her IMAP inbox, not in her matrix-nio client's sync (she is no
    longer in the room), not through the room's history either.  At once: the MX caches
    group members (mailserver.smtp.routing), and the removal makes it forget them."""
    d = running_school.directory
    await d.create_account(role=Role.PUPIL, login="ben", password=PASSWORD)
    await d.add_member("5a", "ben")
    await server.school_rooms.sync_group_rooms()
    room_id = await server.school_rooms.room_of_group("5a")
    assert room_id is not None
    ben = await nio_client(server, "ben")
    try:
        ben_first = await ben.sync(timeout=0)
        assert isinstance(ben_first, SyncResponse) and room_id in ben_first.rooms.join
        await submit(running_school, "lehrer", f"5a@{DOMAIN}", HTML_ONLY)  # anna still in
        await d.remove_member("5a", "anna")
        await server.school_rooms.sync_group_rooms()
        anna_first = await pupil.sync(timeout=0)
        assert isinstance(anna_first, SyncResponse)
        assert room_id not in anna_first.rooms.join
        await submit(running_school, "lehrer", f"5a@{DOMAIN}", PLAIN_AND_HTML)
        await settled(running_school)
        seen = await collect(ben, room_id, ben_first.next_batch, want=2)
        assert [m.body.splitlines()[1] for m in seen] == [
            "Betreff: Elternabend", "Betreff: Wandertag am Freitag – bitte lesen"]
    finally:
        await ben.close()
    later = await pupil.sync(timeout=1000, since=anna_first.next_batch)
    assert isinstance(later, SyncResponse)
    assert from_system(later, room_id) == []
    history = await pupil.room_messages(room_id, start=anna_first.next_batch, limit=50)
    bodies = [getattr(e, "body", "") for e in getattr(history, "chunk", [])]
    assert not any("Wandertag" in body for body in bodies), bodies
    assert await asyncio.to_thread(_inbox_subjects, running_school, "anna") == ["Elternabend"]
    assert await asyncio.to_thread(_inbox_subjects, running_school, "ben") == [
        "Elternabend", "Wandertag am Freitag – bitte lesen"]
