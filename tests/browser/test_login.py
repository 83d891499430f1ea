"""Logging in with a real Chromium: right and wrong password, a foreign site's form.

The scripted HTTP tests sent no Origin header and so missed that Chromium posts
the login form with ``Origin: null`` under ``Referrer-Policy: no-referrer``:
the login failed for every person with the right password.  Here a real browser
fills the form in.
"""

from __future__ import annotations

from typing import Any

from conf.app import School
from mailserver.store import MailboxNotFound
from tests.browser.conftest import DESKTOP, OpenPage, log_in, screenshot
from tests.support.webmail import PASSWORDS


async def test_right_password_opens_the_inbox_and_logout_ends_it(open_page: OpenPage) -> None:
    page = await open_page()
    posted: list[dict[str, str]] = []

    async def remember(request: Any) -> None:
        if request.method == "POST" and request.url.endswith("/login"):
            posted.append(await request.all_headers())
    page.on("request", remember)
    await log_in(page, "anna")
    assert page.url.endswith("/mail"), await page.content()
    assert await page.get_by_role("button", name="Abmelden").is_visible()
    (headers,) = posted
    assert headers.get("sec-fetch-site") == "same-origin"  # what lets the form in
    await screenshot(page, "login-done-desktop")

    await page.get_by_role("button", name="Abmelden").click()
    await page.wait_for_url("**/login")
    await page.goto("/mail")
    assert page.url.endswith("/login")  # the session is gone


async def test_wrong_password_stays_on_the_login_page(open_page: OpenPage) -> None:
    page = await open_page()
    await page.goto("/login")
    await screenshot(page, "login-desktop")
    await log_in(page, "anna", "falsch")
    assert page.url.endswith("/login")
    assert await page.get_by_text("Benutzername oder Passwort stimmt nicht.").is_visible()
    assert await page.get_by_label("Benutzername").input_value() == "anna"
    await screenshot(page, "login-wrong-desktop")
    await page.goto("/mail")
    assert page.url.endswith("/login")


async def test_a_foreign_site_cannot_post_the_login_form(open_page: OpenPage,
                                                         base_url: str) -> None:
    """A page of another origin with the right password still gets no session (login
    CSRF would log the victim into the attacker's account)."""
    page = await open_page(viewport=DESKTOP)
    await page.goto("/login")  # the browser even holds the login cookie
    await page.goto("about:blank")
    await page.set_content(
        f'<form method="post" action="{base_url}/login">'
        '<input name="login" value="paul"><input name="password" value="Paul-Schueler-1">'
        '<button>go</button></form>')
    async with page.expect_navigation():
        await page.click("button")
    assert "Abgelehnt" in await page.content() or "abgelaufen" in await page.content()
    await page.goto(f"{base_url}/mail")
    assert page.url.endswith("/login")


async def test_throttled_login_says_how_long_to_wait(open_page: OpenPage) -> None:
    """After the free failures of one account from one address the directory's throttle
    answers (its thresholds are the directory's), and the page says so in German."""
    page = await open_page()
    statuses = []
    for _ in range(12):
        async with page.expect_response(lambda r: r.request.method == "POST") as answer:
            await log_in(page, "anna", "falsch")
        response = await answer.value
        statuses.append(response.status)
        if response.status == 429:
            break
    assert statuses[0] == 401 and statuses[-1] == 429, statuses
    assert response.headers.get("retry-after", "").isdigit()
    message = page.get_by_role("alert")
    assert "Zu viele Fehlversuche. Bitte in" in await message.inner_text()
    assert page.url.endswith("/login")
    await screenshot(page, "login-throttled-desktop")


async def test_text_survives_a_session_that_ended_while_writing(
        webmail_school: School, open_page: OpenPage) -> None:
    page = await open_page()
    await log_in(page, "anna")
    await page.get_by_role("link", name="Neue Nachricht").click()
    await page.get_by_label("An", exact=True).fill("paul@schule.test")
    await page.get_by_label("Betreff").fill("Zeugniskonferenz")
    text = "Liebe Kolleginnen,\n\ndie Konferenz ist am Montag um 14 Uhr.\n"
    await page.get_by_label("Text", exact=True).fill(text)
    # 30 minutes without a request end the session (here: at once, on the server).
    (server,) = [s for s in webmail_school.services if type(s).__name__ == "WebmailServer"]
    anna = await webmail_school.directory.get_account("anna")
    server.webmail.sessions.end_account(anna.id)  # type: ignore[attr-defined]
    await page.get_by_role("button", name="Senden").click()
    await page.get_by_text("zu lange nicht aktiv").wait_for()
    await screenshot(page, "login-resume-desktop")
    await page.get_by_label("Benutzername").fill("anna")
    await page.get_by_label("Passwort").fill(PASSWORDS["anna"])
    await page.get_by_label("Passwort").press("Enter")
    await page.wait_for_url("**/compose?draft_uid=*")
    assert await page.get_by_label("Betreff").input_value() == "Zeugniskonferenz"
    assert "die Konferenz ist am Montag um 14 Uhr." in \
        await page.get_by_label("Text", exact=True).input_value()
    assert await page.get_by_label("An", exact=True).input_value() == "paul@schule.test"
    paul = await webmail_school.directory.get_account("paul")
    try:
        received = await webmail_school.mail_store.read_mailbox(paul.id)
    except MailboxNotFound:
        received = []
    assert received == []  # kept, not sent behind the writer's back
