"""Settings in a real Chromium: a new password works over IMAP; a vacation reply
reaches the sender."""

from __future__ import annotations

import asyncio
import imaplib

from conf.app import School
from tests.browser.conftest import OpenPage, log_in, screenshot
from tests.mailserver.imap.session.helpers import client_tls, imap_ports
from tests.support.webmail import PASSWORDS

NEW_PASSWORD = "Kastanien-im-Herbst-2026"


def imap_login(school: School, login: str, password: str) -> bool:
    with imaplib.IMAP4_SSL("127.0.0.1", imap_ports(school)[1],
                           ssl_context=client_tls(school.settings), timeout=20) as imap:
        try:
            imap.login(login, password)
        except imaplib.IMAP4.error:
            return False
        return True


async def test_changed_password_works_over_imap(webmail_school: School,
                                                open_page: OpenPage) -> None:
    page = await open_page()
    await log_in(page, "paul")
    await page.get_by_role("link", name="Einstellungen").click()
    await page.get_by_label("Bisheriges Passwort").fill(PASSWORDS["paul"])
    await page.get_by_label("Neues Passwort", exact=True).fill(NEW_PASSWORD)
    await page.get_by_label("Neues Passwort wiederholen").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Passwort ändern").click()
    await page.get_by_text("Das Passwort wurde geändert.").wait_for()
    await screenshot(page, "settings-desktop")
    assert await asyncio.to_thread(imap_login, webmail_school, "paul", NEW_PASSWORD)
    assert not await asyncio.to_thread(imap_login, webmail_school, "paul", PASSWORDS["paul"])


async def test_vacation_reply_reaches_the_sender(webmail_school: School,
                                                 open_page: OpenPage) -> None:
    anna = await open_page()
    await log_in(anna, "anna")
    await anna.goto("/settings")
    await anna.get_by_label("Abwesenheitsnotiz senden").check()
    await anna.get_by_label("Text der Abwesenheitsnotiz").fill(
        "Ich bin bis Montag auf Klassenfahrt.")
    await anna.get_by_role("button", name="Abwesenheitsnotiz speichern").click()
    await anna.get_by_text("Die Abwesenheitsnotiz wurde gespeichert.").wait_for()

    paul = await open_page()
    await log_in(paul, "paul")
    await paul.get_by_role("link", name="Neue Nachricht").click()
    await paul.get_by_label("An", exact=True).fill("anna")
    await paul.get_by_label("Betreff").fill("Hausaufgaben")
    await paul.get_by_role("button", name="Senden").click()
    await paul.wait_for_url("**/mail?box=INBOX&notice=sent")
    for _ in range(50):
        await paul.goto("/mail?box=INBOX")
        if await paul.get_by_role("link", name="Abwesend: Hausaufgaben").count():
            break
        await asyncio.sleep(0.1)
    await paul.get_by_role("link", name="Abwesend: Hausaufgaben").click()
    await paul.get_by_text("Ich bin bis Montag auf Klassenfahrt.").wait_for()
