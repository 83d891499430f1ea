"""Shared by the webmail tests: people in a school, mail delivered to them, the URL."""

from __future__ import annotations

import email.utils
from email.message import EmailMessage

import aiosmtplib

from conf.app import School
from directory.model import Role
from mailserver.smtp import ListenerKind

PASSWORDS = {"anna": "Anna-Lehrerin-1", "paul": "Paul-Schueler-1"}
OUTSIDE = "someone@outside.example"


async def add_people(school: School) -> School:
    """Anna (teacher, display name "Anna Lehrerin") and Paul (pupil), passwords above."""
    d = school.directory
    await d.create_account(role=Role.TEACHER, login="anna", password=PASSWORDS["anna"],
                           display_name="Anna Lehrerin")
    await d.create_account(role=Role.PUPIL, login="paul", password=PASSWORDS["paul"])
    return school


def webmail_url(school: School) -> str:
    (server,) = [s for s in school.services if type(s).__name__ == "WebmailServer"]
    return server.base_url  # type: ignore[attr-defined,no-any-return]


async def deliver(school: School, message: EmailMessage, *, to: str = "anna@schule.test",
                  sender: str = OUTSIDE) -> None:
    """``message`` received over the school's MX, as from another server."""
    host, port = school.services[0].addresses[ListenerKind.MX]  # type: ignore[attr-defined]
    await aiosmtplib.send(message, hostname=host, port=port, start_tls=False,
                          sender=sender, recipients=[to])


def incoming(subject: str, *, text: str = "Hallo", to: str = "anna@schule.test",
             sender: str = f"Someone <{OUTSIDE}>") -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate(localtime=True)
    message.set_content(text)
    return message
