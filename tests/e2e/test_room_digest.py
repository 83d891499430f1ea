"""Room -> mail end to end (issue 18.2): a teacher announces in the class room with
matrix-nio; after the (short) delay, ``serve``'s digest job mails it to the pupil who
has not read it and to that pupil's parent, whose IMAP inboxes (imaplib) get exactly
one digest each, German first with English below, ``Auto-Submitted``,
``List-Unsubscribe`` and the teacher in ``Reply-To``.  Nothing for the pupil whose
read receipt reaches the message, for the pupil who turned digests off in the webmail,
for the pupil who left the group, or for the teacher who wrote it."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.message
import email.policy
import re
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from nio import AsyncClient, RoomSendError, RoomSendResponse, SyncResponse
from sqlalchemy import select, update

from conf.app import School
from conf.settings import BridgeSettings, Settings
from directory.model import GroupKind, MemberRole, Role
from directory.schema import GroupRow
from mailserver.schema import OutboundRow
from messenger.bridge_groups import BridgeGroups
from messenger.room_digest import DigestPreferences
from messenger.server import MatrixServer
from tests.support.bridge import (
    DOMAIN,
    PASSWORD,
    collect,
    group_rooms,
    inbox,
    nio_client,
    send,
    settled,
    webmail,
)
from tests.support.schools import make_settings
from tests.support.smtp_clients import client_tls_context

DELAY, PERIOD = 1.5, 6.0  # seconds


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    base = make_settings(tmp_path / "school", database_url)
    return dataclasses.replace(base, bridge=BridgeSettings(
        digest_delay_seconds=DELAY, digest_period_seconds=PERIOD, digest_check_seconds=0.3))


@pytest.fixture
async def server(running_school: School) -> MatrixServer:
    d = running_school.directory
    await d.create_account(role=Role.TEACHER, login="lehrer", password=PASSWORD,
                           display_name="Frau Lehrer")
    for login in ("anna", "ben", "carl", "dora"):
        await d.create_account(role=Role.PUPIL, login=login, password=PASSWORD,
                               display_name=login.title())
    await d.create_account(role=Role.PARENT, login="mama.ben", password=PASSWORD,
                           display_name="Mama Ben")
    await d.link_parent("mama.ben", "ben")
    await d.create_account(role=Role.PARENT, login="papa.dora", password=PASSWORD,
                           display_name="Papa Dora")
    await d.link_parent("papa.dora", "dora")
    await d.create_group("5a", kind=GroupKind.CLASS, display_name="Klasse 5a")
    await d.add_member("5a", "lehrer", MemberRole.OWNER)
    for login in ("anna", "ben", "carl", "dora"):
        await d.add_member("5a", login)
    await BridgeGroups(running_school.db).change(await d.get_group("5a"), parents_digest=True)
    return await group_rooms(running_school)


@pytest.fixture
async def logged_in(server: MatrixServer) -> AsyncIterator[dict[str, AsyncClient]]:
    """The teacher's and anna's matrix-nio clients."""
    made = {login: await nio_client(server, login) for login in ("lehrer", "anna")}
    yield made
    for client in made.values():
        await client.close()


async def _opt_out(school: School, login: str) -> None:
    """The pupil turns digests off on the webmail's settings page."""
    async with webmail(school, login) as browser:
        async with browser.get("/settings") as response:
            page = await response.text()
            assert 'id="zusammenfassungen"' in page and 'name="digests" checked' in page
            csrf = re.search(r'name="csrf" value="([^"]+)"', page)
            assert csrf
        async with browser.post("/settings/digest", data={"csrf": csrf.group(1)}) as response:
            assert response.status == 200
            assert "Zusammenfassungen wurde gespeichert" in await response.text()


async def test_unread_announcement_reaches_pupil_and_parent_once(
        running_school: School, server: MatrixServer,
        logged_in: dict[str, AsyncClient]) -> None:
    room_id = await server.school_rooms.room_of_group("5a")
    assert room_id is not None
    await _opt_out(running_school, "carl")
    teacher, anna = logged_in["lehrer"], logged_in["anna"]
    await teacher.sync(timeout=0)
    sent = await teacher.room_send(room_id, "m.room.message", {
        "msgtype": "m.text", "body": "Morgen Wandertag, bitte an feste Schuhe denken."})
    assert isinstance(sent, RoomSendResponse)
    # anna reads it at once: her receipt reaches the message.
    assert isinstance(await anna.sync(timeout=0), SyncResponse)
    await anna.room_read_markers(room_id, sent.event_id, sent.event_id)
    # dora leaves the class before the delay is over.
    await running_school.directory.remove_member("5a", "dora")

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if await asyncio.to_thread(inbox, running_school, "mama.ben"):
            break
        await asyncio.sleep(0.3)
    await asyncio.sleep(PERIOD + 1)  # a whole period more: nothing a second time

    (parent_mail,) = await asyncio.to_thread(inbox, running_school, "mama.ben")
    (pupil_mail,) = await asyncio.to_thread(inbox, running_school, "ben")
    for login in ("anna", "carl", "dora", "papa.dora", "lehrer"):
        assert await asyncio.to_thread(inbox, running_school, login) == [], login
    for mail in (parent_mail, pupil_mail):
        assert mail["Auto-Submitted"] == "auto-generated"
        assert re.fullmatch(r"<https://mail\.schule\.test:\d+/digest/unsubscribe\?a=\d+"
                            r"&t=[A-Za-z0-9_-]{22}>", mail["List-Unsubscribe"])
        assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert mail["Reply-To"] == "Frau Lehrer <lehrer@schule.test>"
        assert mail["Subject"] == "1 neue Mitteilung aus den Räumen der Schule"
        body = mail.get_content()
        assert body.count("Morgen Wandertag, bitte an feste Schuhe denken.") == 2
        assert body.index("Klasse 5a – Frau Lehrer") < body.index("-- English --")
        assert "A reply to this email goes to the teacher, not to the room." in body
    assert "in denen Ben ist" in parent_mail.get_content()
    assert "that Ben is in" in parent_mail.get_content()
    assert "die Sie noch nicht gelesen haben" in pupil_mail.get_content()


async def test_a_thread_reply_to_a_bridged_mail_is_mailed_in_its_conversation(
        running_school: School, server: MatrixServer,
        logged_in: dict[str, AsyncClient]) -> None:
    """The teacher's class mail is in the room (not mailed back: it is mail already);
    her answer in its room thread reaches ben's inbox in a digest whose In-Reply-To and
    References name the class mail, so his mail program shows both as one conversation."""
    room_id = await server.school_rooms.room_of_group("5a")
    assert room_id is not None
    teacher = logged_in["lehrer"]
    first = await teacher.sync(timeout=0)
    assert isinstance(first, SyncResponse)
    mail = email.message.EmailMessage()
    mail["From"] = f"Frau Lehrer <lehrer@{DOMAIN}>"
    mail["To"] = f"5a@{DOMAIN}"
    mail["Subject"] = "Klassenfahrt"
    mail["Message-ID"] = "<fahrt-2027@schule.test>"
    mail.set_content("Wir fahren im Mai.")
    await asyncio.to_thread(send, running_school, "lehrer", mail)
    await settled(running_school)
    bridged = await collect(teacher, room_id, first.next_batch, want=1)
    assert len(bridged) == 1
    sent = await teacher.room_send(room_id, "m.room.message", {
        "msgtype": "m.text", "body": "Nachtrag: Abfahrt 7 Uhr.",
        "m.relates_to": {"rel_type": "m.thread", "event_id": bridged[0].event_id}})
    assert isinstance(sent, RoomSendResponse)

    deadline = time.monotonic() + 30
    ben: list[email.message.EmailMessage] = []
    while time.monotonic() < deadline and not ben:
        await asyncio.sleep(0.3)
        ben = await asyncio.to_thread(inbox, running_school, "ben")
        ben = [m for m in ben if m["Auto-Submitted"] == "auto-generated"]
    (digest,) = ben
    assert digest["In-Reply-To"] == "<fahrt-2027@schule.test>"
    assert digest["References"] == "<fahrt-2027@schule.test>"
    body = digest.get_content()
    assert "Nachtrag: Abfahrt 7 Uhr." in body and "Wir fahren im Mai." not in body


async def _wait_for_digests(school: School, login: str, count: int) -> list[
        email.message.EmailMessage]:
    deadline = time.monotonic() + 30
    found: list[email.message.EmailMessage] = []
    while time.monotonic() < deadline and len(found) < count:
        await asyncio.sleep(0.3)
        found = [m for m in await asyncio.to_thread(inbox, school, login)
                 if m["Auto-Submitted"] == "auto-generated"]
    return found


async def test_one_click_unsubscribe_over_https(
        running_school: School, server: MatrixServer,
        logged_in: dict[str, AsyncClient]) -> None:
    """RFC 8058 from a mail program's side: the digest's List-Unsubscribe URL, fetched
    without any cookie, first only shows a page asking (German); a forged token changes
    nothing; the one-click POST turns ben's digests off: the next announcement reaches
    his mother but not him."""
    room_id = await server.school_rooms.room_of_group("5a")
    assert room_id is not None
    teacher = logged_in["lehrer"]
    await teacher.sync(timeout=0)
    sent = await teacher.room_send(room_id, "m.room.message", {
        "msgtype": "m.text", "body": "Morgen fällt Sport aus."})
    assert isinstance(sent, RoomSendResponse)
    (digest,) = await _wait_for_digests(running_school, "ben", 1)
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = re.fullmatch(r"<(https://[^>]+)>", str(digest["List-Unsubscribe"]))
    assert link, digest["List-Unsubscribe"]
    url = urllib.parse.urlsplit(link.group(1))
    assert link.group(1) in digest.get_content()  # the same link in the text
    ben = await running_school.directory.get_account("ben")
    preferences = DigestPreferences(running_school.db)
    (web,) = [s for s in running_school.services if type(s).__name__ == "WebmailServer"]
    connector = aiohttp.TCPConnector(ssl=client_tls_context(running_school.settings))
    async with aiohttp.ClientSession(web.base_url, connector=connector,  # type: ignore
                                     cookie_jar=aiohttp.DummyCookieJar()) as mail_program:
        target = f"{url.path}?{url.query}"
        async with mail_program.get(target, headers={"Accept-Language": "en"}) as response:
            assert response.status == 200
            page = await response.text()
        assert "Zusammenfassungen abbestellen" not in page  # in English when asked
        async with mail_program.get(target) as response:
            assert response.status == 200
            page = await response.text()
        assert "Sollen für ben@schule.test keine Zusammenfassungen" in page
        assert 'name="List-Unsubscribe" value="One-Click"' in page
        assert await preferences.enabled(ben.id)  # a GET changes nothing
        forged = target[:-3] + ("AAA" if not target.endswith("AAA") else "BBB")
        for method in ("GET", "POST"):
            async with mail_program.request(method, forged, data={
                    "List-Unsubscribe": "One-Click"}) as response:
                assert response.status == 404
        async with mail_program.post(target.replace(f"a={ben.id}", f"a={ben.id + 1}"),
                                     data={"List-Unsubscribe": "One-Click"}) as response:
            assert response.status == 404  # ben's token is no one else's
        assert await preferences.enabled(ben.id)
        async with mail_program.post(target, data={"List-Unsubscribe": "One-Click"},
                                     allow_redirects=False) as response:
            assert response.status == 200
            assert "keine Zusammenfassungen aus den Räumen mehr" in await response.text()
    assert not await preferences.enabled(ben.id)

    sent = await teacher.room_send(room_id, "m.room.message", {
        "msgtype": "m.text", "body": "Am Freitag ist Wandertag."})
    assert isinstance(sent, RoomSendResponse)
    parent = await _wait_for_digests(running_school, "mama.ben", 2)
    assert "Am Freitag ist Wandertag." in parent[-1].get_content()
    # ben's would have gone out in the same run (both had their first one together).
    assert len(await asyncio.to_thread(inbox, running_school, "ben")) == 1


async def test_pupils_words_never_leave_the_room_by_mail(
        running_school: School, server: MatrixServer,
        logged_in: dict[str, AsyncClient]) -> None:
    """Rule 4 (room -> mail): in the announcement room a pupil's matrix-nio client may not
    post (the role policy as power levels); what a pupil wrote while the group was open
    is in the room but in no digest, not even the parents', and nothing of it is queued
    for an outside address; the teacher's announcement after it is mailed."""
    room_id = await server.school_rooms.room_of_group("5a")
    assert room_id is not None
    teacher, anna = logged_in["lehrer"], logged_in["anna"]
    await anna.sync(timeout=0)
    refused = await anna.room_send(room_id, "m.room.message", {
        "msgtype": "m.text", "body": "Anna darf hier nicht schreiben."})
    assert isinstance(refused, RoomSendError) and refused.status_code == "M_FORBIDDEN"
    # The class was open for a while (members may post), then closed again.
    await _members_may_post(running_school, "5a", True)
    await server.school_rooms.sync_group_rooms()
    said = await anna.room_send(room_id, "m.room.message", {
        "msgtype": "m.text", "body": "Annas Geheimnis: ich habe den Schlüssel."})
    assert isinstance(said, RoomSendResponse)
    await _members_may_post(running_school, "5a", False)
    await server.school_rooms.sync_group_rooms()
    await teacher.sync(timeout=0)
    sent = await teacher.room_send(room_id, "m.room.message", {
        "msgtype": "m.text", "body": "Bitte den Schlüssel im Sekretariat abgeben."})
    assert isinstance(sent, RoomSendResponse)

    (parent,) = await _wait_for_digests(running_school, "mama.ben", 1)
    (pupil,) = await _wait_for_digests(running_school, "ben", 1)
    for digest in (parent, pupil):
        body = digest.get_content()
        assert "Bitte den Schlüssel im Sekretariat abgeben." in body
        assert "Geheimnis" not in body and "Anna" not in body
        assert "nicht schreiben" not in body
    async with running_school.db.read() as session:
        queued = (await session.scalars(select(OutboundRow.recipient))).all()
    assert queued == []


async def _members_may_post(school: School, group: str, allowed: bool) -> None:
    """The group's setting changed by the school (the admin's import sets it)."""
    async with school.db.write() as session:
        await session.execute(update(GroupRow).where(GroupRow.name == group)
                              .values(members_may_post=allowed))
