"""Mail threads in the room (issue 18.3): replies by mail (smtplib) to a bridged mail
land in that mail's room thread, a reply to the reply in the same thread answering
it, without the quoted original; a reply to a mail the room never saw starts nothing.
A pupil's matrix-nio client reads the relations."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

import pytest
from nio import AsyncClient, SyncResponse

from conf.app import School
from directory.model import GroupKind, MemberRole, Role
from messenger.server import MatrixServer
from tests.support.bridge import DOMAIN, PASSWORD, collect, group_rooms, send, settled


def _mail(login: str, message_id: str, text: str, *, in_reply_to: str = "",
          references: str = "") -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"{login.title()} <{login}@{DOMAIN}>"
    message["To"] = f"5a@{DOMAIN}"
    message["Subject"] = "Klassenfahrt" if not in_reply_to else "Re: Klassenfahrt"
    message["Message-ID"] = message_id
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = references
    message.set_content(text)
    return message


@pytest.fixture
async def server(running_school: School) -> MatrixServer:
    d = running_school.directory
    for login in ("lehrer", "kollegin"):
        await d.create_account(role=Role.TEACHER, login=login, password=PASSWORD)
    await d.create_account(role=Role.PUPIL, login="anna", password=PASSWORD)
    await d.create_group("5a", kind=GroupKind.CLASS, display_name="Klasse 5a")
    await d.add_member("5a", "lehrer", MemberRole.OWNER)
    await d.add_member("5a", "kollegin", MemberRole.OWNER)
    await d.add_member("5a", "anna")
    return await group_rooms(running_school)


async def test_mail_replies_become_the_thread_of_the_bridged_mail(
        running_school: School, server: MatrixServer, pupil: AsyncClient) -> None:
    room_id = await server.school_rooms.room_of_group("5a")
    assert room_id is not None
    first = await pupil.sync(timeout=0)
    assert isinstance(first, SyncResponse)

    mails = [
        ("lehrer", _mail("lehrer", "<fahrt@schule.test>", "Wir fahren im Mai nach Rügen.")),
        ("kollegin", _mail("kollegin", "<antwort-1@schule.test>",
                           "Ich komme als Begleitung mit.\n\nAm 07.12.2026 um 10:00 schrieb "
                           "Lehrer <lehrer@schule.test>:\n> Wir fahren im Mai nach Rügen.\n",
                           in_reply_to="<fahrt@schule.test>",
                           references="<fahrt@schule.test>")),
        ("lehrer", _mail("lehrer", "<antwort-2@schule.test>", "Danke!\n\n> Ich komme mit.",
                         in_reply_to="<antwort-1@schule.test>",
                         references="<fahrt@schule.test> <antwort-1@schule.test>")),
        ("lehrer", _mail("lehrer", "<anders@schule.test>", "Eine andere Sache.",
                         in_reply_to="<nie-gesehen@elsewhere.example>",
                         references="<nie-gesehen@elsewhere.example>")),
    ]
    for login, mail in mails:  # one after the other: each reply finds its parent posted
        await asyncio.to_thread(send, running_school, login, mail)
        await settled(running_school)
    root, reply, reply_to_reply, other = await collect(pupil, room_id, first.next_batch,
                                                       want=4)

    assert "m.relates_to" not in root.source["content"]
    relation = reply.source["content"]["m.relates_to"]
    assert relation == {"rel_type": "m.thread", "event_id": root.event_id,
                        "is_falling_back": True,
                        "m.in_reply_to": {"event_id": root.event_id}}
    assert "Ich komme als Begleitung mit." in reply.body
    assert "schrieb" not in reply.body and "> Wir fahren" not in reply.body
    relation = reply_to_reply.source["content"]["m.relates_to"]
    assert relation["event_id"] == root.event_id
    assert relation["m.in_reply_to"] == {"event_id": reply.event_id}
    assert "Danke!" in reply_to_reply.body and "> Ich komme" not in reply_to_reply.body
    assert "m.relates_to" not in other.source["content"]
