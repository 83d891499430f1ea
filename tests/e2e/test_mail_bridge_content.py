"""Mail -> room, the content (issue 18.1): a teacher's mail to the class address sent
with smtplib, carrying HTML with scripts, a PDF, an SVG and a file over the media
limit; a pupil's matrix-nio client reads the sanitised message, downloads the PDF, and
follows the link into the webmail to the own copy of the mail.  The group's setting
turns the bridge off; a mail from an unverified sender is not repeated in the room."""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from email.message import EmailMessage

import pytest
from nio import AsyncClient, DownloadResponse, RoomMessageFile, SyncResponse

from conf.app import School
from directory.model import GroupKind, MemberRole, Role
from mailserver.group_mail import group_mail
from messenger.bridge_groups import BridgeGroups
from messenger.server import MatrixServer
from tests.support.bridge import (
    DOMAIN,
    PASSWORD,
    SYSTEM,
    collect,
    group_rooms,
    send,
    settled,
    webmail,
)

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
LIMIT = 64 * 1024  # the media repository's limit in these tests


def _mail(to: str, message_id: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Frau Lehrer <lehrer@{DOMAIN}>"
    message["To"] = to
    message["Subject"] = "Klassenfahrt: " + "sehr " * 2000 + "wichtig"
    message["Message-ID"] = message_id
    message.set_content("Die Unterlagen hängen an.")
    message.add_alternative(
        "<html><head><script>alert(1)</script><style>b{}</style></head><body>"
        "<p onclick='x()'>Die <b>Unterlagen</b> hängen an.</p>"
        "<a href='javascript:alert(2)'>hier</a> <a href='https://schule.test/fahrt'>Info</a>"
        "<img src='https://tracker.example/p.gif'></body></html>", subtype="html")
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename="fahrt.pdf")
    message.add_attachment(b"<svg onload='alert(3)'/>", maintype="image", subtype="svg+xml",
                           filename="bild.svg")
    message.add_attachment(b"x" * (LIMIT + 1), maintype="application",
                           subtype="octet-stream", filename="gross.bin")
    return message


@pytest.fixture
async def server(running_school: School) -> MatrixServer:
    d = running_school.directory
    await d.create_account(role=Role.TEACHER, login="lehrer", password=PASSWORD)
    await d.create_account(role=Role.PUPIL, login="anna", password=PASSWORD)
    await d.create_account(role=Role.PUPIL, login="ben", password=PASSWORD)
    await d.create_group("5a", kind=GroupKind.CLASS, display_name="Klasse 5a")
    await d.create_group("theater", kind=GroupKind.CUSTOM, display_name="Theater-AG")
    for group in ("5a", "theater"):
        await d.add_member(group, "lehrer", MemberRole.OWNER)
        await d.add_member(group, "anna")
    server = await group_rooms(running_school)
    assert server.media is not None
    server.media.max_upload_bytes = LIMIT
    return server


async def _files(client: AsyncClient, room_id: str, since: str) -> list[RoomMessageFile]:
    synced = await client.sync(timeout=0, since=since)
    assert isinstance(synced, SyncResponse)
    room = synced.rooms.join.get(room_id)
    return [] if room is None else [e for e in room.timeline.events
                                    if isinstance(e, RoomMessageFile) and e.sender == SYSTEM]


async def _webmail_get(school: School, login: str, path: str) -> tuple[int, str, str]:
    """(status, Location, text) of ``path`` for ``login`` logged in to the webmail."""
    async with webmail(school, login) as browser:
        async with browser.get(path, allow_redirects=False) as response:
            location = response.headers.get("Location", "")
        if response.status == 303:
            async with browser.get(location) as page:
                return response.status, location, await page.text()
        return response.status, location, ""


async def test_html_attachments_and_webmail_link(
        running_school: School, server: MatrixServer, pupil: AsyncClient) -> None:
    room_id = await server.school_rooms.room_of_group("5a")
    assert room_id is not None
    first = await pupil.sync(timeout=0)
    assert isinstance(first, SyncResponse)

    message = _mail(f"5a@{DOMAIN}", "<fahrt-1@schule.test>")
    await asyncio.to_thread(send, running_school, "lehrer", message)
    await asyncio.to_thread(send, running_school, "lehrer", message)  # delivered again
    (post,) = await collect(pupil, room_id, first.next_batch, want=1)

    assert len(post.body.splitlines()[1]) < 320  # the 10,000-character subject, cut
    assert "Die Unterlagen hängen an." in post.body
    assert "Anhänge nur im Postfach: bild.svg, gross.bin" in post.body
    html = post.formatted_body
    assert "<p>Die <b>Unterlagen</b> hängen an.</p>" in html
    assert '<a href="https://schule.test/fahrt">Info</a>' in html
    for banned in ("script", "alert", "onclick", "<img", "tracker", "javascript", "<style"):
        assert banned not in html, banned

    # The PDF, as a file event after the message; anna downloads it with nio.
    files = await _files(pupil, room_id, first.next_batch)
    assert [f.body for f in files] == ["fahrt.pdf"]
    assert files[0].source["content"]["info"] == {"mimetype": "application/pdf",
                                                  "size": len(PDF)}
    got = await pupil.download(files[0].url)
    assert isinstance(got, DownloadResponse) and got.body == PDF

    # The link opens anna's own copy in the webmail; ben (not in the class) has none.
    link = re.search(r"Im Webmail öffnen: (\S+)", post.body)
    assert link
    url = urllib.parse.urlsplit(link.group(1))
    assert url.hostname == f"mail.{DOMAIN}"
    path = f"{url.path}?{url.query}"
    status, location, page = await _webmail_get(running_school, "anna", path)
    assert status == 303 and location.startswith("/message?box=INBOX&uid="), location
    assert "Klassenfahrt" in page and "fahrt.pdf" in page
    status, _, _ = await _webmail_get(running_school, "ben", path)
    assert status == 404


async def test_group_setting_and_unverified_sender_post_nothing(
        running_school: School, server: MatrixServer, pupil: AsyncClient) -> None:
    room_id = await server.school_rooms.room_of_group("5a")
    theater = await server.school_rooms.room_of_group("theater")
    assert room_id is not None and theater is not None
    first = await pupil.sync(timeout=0)
    assert isinstance(first, SyncResponse)
    groups = BridgeGroups(running_school.db)
    five_a = await running_school.directory.get_group("5a")
    assert (await groups.of(five_a)).mail_to_room  # a class: on by default
    assert not (await groups.of(await running_school.directory.get_group("theater"))
                ).mail_to_room  # a custom group: off by default

    await asyncio.to_thread(send, running_school, "lehrer", _mail(f"theater@{DOMAIN}", "<t-1@x>"))
    await groups.change(five_a, mail_to_room=False)
    await asyncio.to_thread(send, running_school, "lehrer", _mail(f"5a@{DOMAIN}", "<off-2@x>"))
    await settled(running_school)
    await groups.change(five_a, mail_to_room=True)
    # A mail whose sender nobody verified (no login, no DMARC pass) stays in the mailbox.
    raw = _mail(f"5a@{DOMAIN}", "<forged-3@x>").as_bytes()
    await running_school.mail_bridge.group_mail_delivered(group_mail("5a", raw))
    await asyncio.to_thread(send, running_school, "lehrer", _mail(f"5a@{DOMAIN}", "<on-4@x>"))

    messages = await collect(pupil, room_id, first.next_batch, want=1)
    assert len(messages) == 1
    later = await pupil.sync(timeout=0, since=first.next_batch)
    assert isinstance(later, SyncResponse)
    room = later.rooms.join.get(theater)
    assert room is None or not [e for e in room.timeline.events if e.sender == SYSTEM
                                and type(e).__name__.startswith("RoomMessage")]


async def test_a_mail_with_200_attachments_posts_ten_and_counts_the_rest(
        running_school: School, server: MatrixServer, pupil: AsyncClient) -> None:
    room_id = await server.school_rooms.room_of_group("5a")
    assert room_id is not None
    first = await pupil.sync(timeout=0)
    assert isinstance(first, SyncResponse)
    message = EmailMessage()
    message["From"] = f"Frau Lehrer <lehrer@{DOMAIN}>"
    message["To"] = f"5a@{DOMAIN}"
    message["Subject"] = "Viele Blätter"
    message["Message-ID"] = "<blaetter@schule.test>"
    message.set_content("Alle Arbeitsblätter.")
    for number in range(200):
        message.add_attachment(f"Blatt {number}".encode(), maintype="text", subtype="plain",
                               filename=f"blatt-{number:03d}.txt")
    await asyncio.to_thread(send, running_school, "lehrer", message)
    await settled(running_school)
    (post,) = await collect(pupil, room_id, first.next_batch, want=1)
    assert "Anhänge nur im Postfach: 190 weitere" in post.body
    files = await _files(pupil, room_id, first.next_batch)
    assert [f.body for f in files] == [f"blatt-{n:03d}.txt" for n in range(10)]


async def test_the_link_leads_through_the_login_to_the_mail(
        running_school: School, server: MatrixServer, pupil: AsyncClient) -> None:
    """A pupil not logged in to the webmail follows the room's link: the login page,
    then the mail itself; the login page continues nowhere else (no open redirect)."""
    room_id = await server.school_rooms.room_of_group("5a")
    assert room_id is not None
    first = await pupil.sync(timeout=0)
    assert isinstance(first, SyncResponse)
    await asyncio.to_thread(send, running_school, "lehrer", _mail(f"5a@{DOMAIN}", "<link-1@x>"))
    await settled(running_school)
    (post,) = await collect(pupil, room_id, first.next_batch, want=1)
    link = re.search(r"Im Webmail öffnen: (\S+)", post.body)
    assert link
    url = urllib.parse.urlsplit(link.group(1))
    path = f"{url.path}?{url.query}"
    async with webmail(running_school) as browser:
        async with browser.get(path, allow_redirects=False) as response:
            assert response.status == 303
            login_url = response.headers["Location"]
        target = urllib.parse.urlsplit(login_url)
        assert target.path == "/login"
        assert urllib.parse.parse_qs(target.query) == {"weiter": [path]}
        async with browser.get(login_url) as response:
            page = await response.text()
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        weiter = re.search(r'name="weiter" value="([^"]+)"', page)
        assert token and weiter and weiter.group(1) == path
        async with browser.post("/login", allow_redirects=False, data={
                "csrf": token.group(1), "login": "anna", "password": PASSWORD,
                "weiter": weiter.group(1)}) as response:
            assert response.status == 303 and response.headers["Location"] == path
        async with browser.get(path) as response:
            assert response.status == 200 and "Klassenfahrt" in await response.text()
            assert response.url.path == "/message"
        # A login page asked to continue elsewhere does not.
        async with browser.get("/login?weiter=https%3A%2F%2Fevil.example%2F",
                               allow_redirects=False) as response:
            assert response.headers["Location"] == "/mail"
