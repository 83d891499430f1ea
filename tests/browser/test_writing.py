"""Writing in a real Chromium: reply-all and forward (headers checked over IMAP),
a draft saved and opened again."""

from __future__ import annotations

import asyncio
import email
import email.policy
import imaplib
import re
from email.message import EmailMessage
from pathlib import Path

from conf.app import School
from tests.browser.conftest import PHONE, OpenPage, log_in, screenshot
from tests.mailserver.imap.session.helpers import client_tls, imap_ports
from tests.support.webmail import PASSWORDS, deliver


def imap_messages(school: School, login: str, mailbox: str = "INBOX") -> list[EmailMessage]:
    """Every message of ``mailbox`` as an IMAP client (imaplib) sees it."""
    with imaplib.IMAP4_SSL("127.0.0.1", imap_ports(school)[1],
                           ssl_context=client_tls(school.settings), timeout=20) as imap:
        imap.login(login, PASSWORDS[login])
        imap.select(mailbox, readonly=True)
        _, data = imap.uid("SEARCH", "ALL")
        found = []
        for uid in data[0].split():
            _, parts = imap.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = parts[0][1]  # type: ignore[index]
            found.append(email.message_from_bytes(raw, policy=email.policy.default))
        return found  # type: ignore[return-value]


def question() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Eva Eltern <eva@eltern.example>"
    message["Reply-To"] = "Elternbeirat <beirat@eltern.example>"
    message["To"] = "anna@schule.test, paul@schule.test"
    message["Subject"] = "AW: Ausflug"
    message["Message-ID"] = "<q1@eltern.example>"
    message["References"] = "<q0@eltern.example>"
    message["Date"] = "Sat, 05 Dec 2026 10:00:00 +0100"
    message.set_content("Wann geht es los?")
    return message


async def test_reply_all_and_forward_keep_the_thread(webmail_school: School,
                                                    open_page: OpenPage) -> None:
    school = webmail_school
    await deliver(school, question())
    page = await open_page()
    await log_in(page, "anna")
    await page.get_by_role("link", name="AW: Ausflug").click()
    await page.get_by_role("link", name="Allen antworten").click()
    assert await page.get_by_label("An", exact=True).input_value() == (
        "Elternbeirat <beirat@eltern.example>")
    assert await page.get_by_label("Cc", exact=True).input_value() == "paul@schule.test"
    assert await page.get_by_label("Betreff").input_value() == "Re: Ausflug"
    body = page.get_by_label("Text", exact=True)
    assert "\n\nAm 05.12.2026 10:00 schrieb" in await body.input_value()
    await body.press("Control+Home")
    await body.type("Um acht am Bahnhof.")
    await screenshot(page, "compose-reply-all-desktop")
    await page.get_by_role("button", name="Senden").click()
    await page.wait_for_url("**/mail?box=INBOX&notice=sent")

    (reply,) = await asyncio.to_thread(imap_messages, school, "paul")
    assert reply["Subject"] == "Re: Ausflug"
    assert reply["In-Reply-To"] == "<q1@eltern.example>"
    assert reply["References"] == "<q0@eltern.example> <q1@eltern.example>"
    assert reply.get_content().startswith("Um acht am Bahnhof.")

    await page.get_by_role("link", name="AW: Ausflug").click()
    await page.get_by_role("link", name="Als Anhang weiterleiten").click()
    await page.get_by_label("An", exact=True).fill("paul")  # a bare login is enough
    await page.get_by_role("button", name="Senden").click()
    await page.wait_for_url("**/mail?box=INBOX&notice=sent")
    forwarded = (await asyncio.to_thread(imap_messages, school, "paul"))[-1]
    assert forwarded["Subject"] == "Fwd: Ausflug"
    assert forwarded["To"] == "paul@schule.test"
    (attached,) = forwarded.iter_attachments()
    assert attached.get_content()["Message-ID"] == "<q1@eltern.example>"


async def test_draft_is_saved_and_opened_again(webmail_school: School,
                                               open_page: OpenPage) -> None:
    page = await open_page(viewport=PHONE)
    await log_in(page, "paul")
    await page.get_by_role("link", name="Neue Nachricht").click()
    await page.get_by_label("An", exact=True).fill("anna")
    await page.get_by_label("Betreff").fill("Referat über Vulkane")
    await page.get_by_label("Text", exact=True).fill("Erste Gliederung")
    await page.get_by_label("Anhänge hinzufügen").set_input_files(files=[{
        "name": "Gliederung.txt", "mimeType": "text/plain", "buffer": b"1. Magma"}])
    await page.get_by_role("button", name="Entwurf speichern").click()
    await page.get_by_text("Der Entwurf wurde gespeichert.").wait_for()
    await screenshot(page, "compose-draft-phone")

    await page.goto("/mail?box=Drafts")
    await page.get_by_role("link", name="Referat über Vulkane").click()
    await page.get_by_role("link", name="Entwurf bearbeiten").click()
    assert await page.get_by_label("An", exact=True).input_value() == "anna@schule.test"
    assert await page.get_by_label("Betreff").input_value() == "Referat über Vulkane"
    assert "Erste Gliederung" in await page.get_by_label("Text", exact=True).input_value()
    assert await page.get_by_label("Gliederung.txt").is_checked()
    await page.get_by_role("button", name="Senden").click()
    await page.wait_for_url("**/mail?box=INBOX&notice=sent")
    (received,) = await asyncio.to_thread(imap_messages, webmail_school, "anna")
    assert [p.get_filename() for p in received.iter_attachments()] == ["Gliederung.txt"]
    assert await asyncio.to_thread(imap_messages, webmail_school, "paul", "Drafts") == []


async def test_compose_saves_the_draft_by_itself(webmail_school: School,
                                                 open_page: OpenPage) -> None:
    """A pause in typing saves the draft (one draft, replaced by each save; removed when
    sent); the script runs under the page's nonce without a CSP complaint."""
    page = await open_page()
    complaints: list[str] = []
    page.on("console", lambda message: complaints.append(message.text)
            if "Content Security Policy" in message.text else None)
    await log_in(page, "anna")
    await page.get_by_role("link", name="Neue Nachricht").click()
    await page.get_by_label("An", exact=True).fill("paul")
    await page.get_by_label("Betreff").fill("Elternabend")
    body = page.get_by_label("Text", exact=True)
    await body.press("Control+Home")
    await body.type("Erster Satz.")
    status = page.locator("#autosave-status")
    await status.filter(has_text="Entwurf gespeichert um").wait_for()
    assert re.fullmatch(r"Entwurf gespeichert um \d\d:\d\d", await status.inner_text())
    first = await page.locator("input[name=draft_uid]").input_value()
    (draft,) = await asyncio.to_thread(imap_messages, webmail_school, "anna", "Drafts")
    assert draft["Subject"] == "Elternabend" and "Erster Satz." in draft.get_content()

    await body.type(" Zweiter Satz.")
    await page.wait_for_function(
        "uid => document.querySelector('input[name=draft_uid]').value !== uid", arg=first)
    (draft,) = await asyncio.to_thread(imap_messages, webmail_school, "anna", "Drafts")
    assert "Erster Satz. Zweiter Satz." in draft.get_content()  # replaced, not a copy

    await page.get_by_role("button", name="Senden").click()
    await page.wait_for_url("**/mail?box=INBOX&notice=sent")
    (received,) = await asyncio.to_thread(imap_messages, webmail_school, "paul")
    assert "Zweiter Satz." in received.get_content()
    assert await asyncio.to_thread(imap_messages, webmail_school, "anna", "Drafts") == []
    assert complaints == []


async def test_compose_without_script_saves_nothing_by_itself(webmail_school: School,
                                                              open_page: OpenPage) -> None:
    page = await open_page(java_script_enabled=False)
    await log_in(page, "anna")
    await page.goto("/compose")
    await page.get_by_label("Betreff").fill("Ohne Skript")
    await page.get_by_label("Text", exact=True).fill("Nur mit dem Knopf gespeichert.")
    await asyncio.sleep(3)  # longer than the script's pause
    assert await asyncio.to_thread(imap_messages, webmail_school, "anna", "Drafts") == []
    await page.get_by_role("button", name="Entwurf speichern").click()
    await page.get_by_text("Der Entwurf wurde gespeichert.").wait_for()
    (draft,) = await asyncio.to_thread(imap_messages, webmail_school, "anna", "Drafts")
    assert draft["Subject"] == "Ohne Skript"


async def test_a_30_mb_attachment_is_refused_in_german_and_nothing_is_sent(
        webmail_school: School, open_page: OpenPage, tmp_path: Path) -> None:
    """Over the school's 25 MiB message limit (the SMTP size other servers take)."""
    assert webmail_school.settings.smtp.max_message_size == 25 * 1024 * 1024
    page = await open_page()
    await log_in(page, "anna")
    await page.goto("/compose")
    await page.get_by_label("An", exact=True).fill("paul")
    await page.get_by_label("Betreff").fill("Die Ferienfotos")
    photos = tmp_path / "Fotos.zip"
    with photos.open("wb") as file:
        file.truncate(30 * 1024 * 1024)
    # A file path: the browser reads it itself (a 30 MB buffer crawls through the driver).
    await page.get_by_label("Anhänge hinzufügen").set_input_files(photos)
    await page.get_by_role("button", name="Senden").click()
    await page.get_by_role("heading", name="Zu groß").wait_for(timeout=60_000)
    assert "Die Nachricht mit ihren Anhängen ist zu groß." in await page.content()
    assert await page.evaluate("() => document.documentElement.lang") == "de"
    await screenshot(page, "compose-too-big-desktop")
    assert await asyncio.to_thread(imap_messages, webmail_school, "paul") == []
