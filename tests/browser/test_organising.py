"""Organising in a real Chromium: search, several messages moved at once."""

from __future__ import annotations

from email.message import EmailMessage

from conf.app import School
from tests.browser.conftest import PHONE, OpenPage, log_in, screenshot
from tests.support.webmail import deliver


def mail(subject: str, body: str, date: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Eva Eltern <eva@eltern.example>"
    message["To"] = "anna@schule.test"
    message["Subject"] = subject
    message["Date"] = date
    message.set_content(body)
    return message


async def test_search_then_move_several_at_once(webmail_school: School,
                                               open_page: OpenPage) -> None:
    school = webmail_school
    await deliver(school, mail("Elternabend", "In der Aula.", "Tue, 01 Dec 2026 08:00 +0000"))
    await deliver(school, mail("Ausflug", "Treffpunkt Bahnhof.", "Wed, 02 Dec 2026 08:00 +0000"))
    await deliver(school, mail("Ausflug Nachtrag", "Bahnhof Gleis 3.",
                               "Thu, 03 Dec 2026 08:00 +0000"))
    page = await open_page()
    await log_in(page, "anna")
    await page.get_by_label("Suchen").fill("bahnhof")
    await page.get_by_label("Suchen").press("Enter")
    await page.wait_for_url("**/search?**")
    rows = page.locator("table.messages tbody tr")
    assert await rows.count() == 2
    assert await page.get_by_role("link", name="Elternabend").count() == 0
    await screenshot(page, "search-desktop")

    await page.goto("/mail")
    await page.fill("input[name=name]", "Ausflug 5a")
    await page.get_by_role("button", name="Anlegen").click()
    await page.goto("/mail?box=INBOX")
    await page.get_by_label("Ausflug auswählen").check()
    await page.get_by_label("Ausflug Nachtrag auswählen").check()
    await page.get_by_label("Verschieben nach").select_option("Ausflug 5a")
    await page.get_by_role("button", name="Verschieben", exact=True).click()
    await page.wait_for_url("**/mail?box=INBOX**")
    assert await page.get_by_role("link", name="Elternabend").count() == 1
    assert await page.locator("table.messages tbody tr").count() == 1
    anna = await school.directory.get_account("anna")
    moved = await school.mail_store.read_mailbox(anna.id, "Ausflug 5a")
    assert len(moved) == 2

    phone = await open_page(viewport=PHONE)
    await log_in(phone, "anna")
    await phone.goto("/mail?box=Ausflug%205a")
    await screenshot(phone, "folder-phone")
